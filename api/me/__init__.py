"""``me``: what a shopper token may read and change about its own customer."""
