"""nixlift: build NixOS systems on a strong machine, copy them over SSH, switch the hosts."""

__version__ = "0.1.0"
