"""The fuzzer's parts (scripts/fuzz.py drives them; tests/test_fuzz.py and test_bad_input.py use them)."""
