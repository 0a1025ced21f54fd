"""Training and evaluation of the fracture-triage models (MURA v1.1 and FracAtlas)."""
