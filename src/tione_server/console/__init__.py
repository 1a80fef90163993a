"""The web console (issue 11): static HTML, CSS and ES modules under web/, served at /console/ by serve.py.

The console is only a client of the public API: every call it makes is an ordinary TC3-signed request."""
