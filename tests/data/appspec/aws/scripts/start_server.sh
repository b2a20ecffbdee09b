#!/bin/sh
echo start_server
