#!/bin/sh
# Image test scaffolding: the checks run before the root is mounted.
/bin/sh /kbox-test/inside.sh
