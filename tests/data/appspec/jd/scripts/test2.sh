#!/bin/sh
echo test2
