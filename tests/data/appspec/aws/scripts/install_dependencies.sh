#!/bin/sh
echo install_dependencies
