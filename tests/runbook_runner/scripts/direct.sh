#!/bin/sh
echo "run directly"
