#!/bin/sh
echo warm_cache
