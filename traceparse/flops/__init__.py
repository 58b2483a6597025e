"""Stage 4, count FLOPs: `count.py` (the stage), `formulas.py` (per op), `analytic.py` (per module),
`peaks.py` (device peaks). Nothing is imported here, so that the loader can read
`formulas.shapes_needed` without pulling in the later stages."""
