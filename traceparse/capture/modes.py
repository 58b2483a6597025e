"""The compile and graph choices `capture` offers: plain names, importable without torch."""

COMPILE_MODES = ("default", "max-autotune", "reduce-overhead")
COMPILE_SCOPES = ("blocks", "model")
