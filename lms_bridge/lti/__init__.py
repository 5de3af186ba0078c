"""The LTI 1.3 Core specification, tool side (1EdTech LTI Core 1.3, LTI Advantage)."""
