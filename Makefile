# hema: set up, demo, test, rebuild the embedded default model.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.hema-installed
HEMA_DATA ?= ../shared/data/pbc
DEFAULT_MODEL := runtime/models/hema-default.onnx

.PHONY: install demo test test-fast default-model benchmark clean

install: $(STAMP)

# Every extra but tensorrt (its libraries need an NVIDIA GPU machine). torch 2.14.1 / torchvision 0.29.1 are
# pinned in pyproject.toml's [train] extra.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[train,export,openvino,dev]'
	touch $(STAMP)

demo: install
	$(BIN)/hema-infer classify $(HEMA_DATA) --out build/demo

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

# EfficientNet-Lite0 (ImageNet) + logistic regression on hema's train split of PBC, scored on its test split.
default-model: install
	$(BIN)/hema-train fewshot --data ../shared/data/pbc --backbone efficientnet_lite0 --head lr \
		--labels-per-class 0 --repeats 1 --out build/default-head
	$(BIN)/hema-export onnx --head build/default-head --out $(DEFAULT_MODEL)

clean:
	rm -rf build .pytest_cache
