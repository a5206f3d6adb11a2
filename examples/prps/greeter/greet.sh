#!/bin/sh
# A tiny library of greetings: source it, then call its functions.

# greet NAME: prints "hello, NAME".
greet() {
    echo "hello, $1"
}
