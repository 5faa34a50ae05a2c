"""Stand-ins for NVIDIA's binaries (stdlib only; copied into simulated hosts and images as `spark_sim_standins`)."""
