"""The rehearsal fleet: simulated DGX Sparks on one Linux machine.

Real systemd, sshd, docker, a registry and the real Hugging Face client; only NVIDIA's binaries are stand-ins.
Product code never imports this package: it only sees hosts that answer SSH.
"""
