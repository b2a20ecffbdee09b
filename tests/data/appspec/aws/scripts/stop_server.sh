#!/bin/sh
echo stop_server
