# hema: set up, demo, test, rebuild the embedded default model.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.hema-installed
HEMA_DATA ?= ../shared/data/pbc
DEFAULT_MODEL := runtime/models/hema-default.onnx

.PHONY: install demo test test-fast default-model dino-cpu mdd-cpu clean

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

# The README's DINO run: 3 epochs on the PBC and BCCD train splits from ImageNet Lite0 (about 25 min on 2 cores).
dino-cpu: install
	$(BIN)/hema-train ssl --data ../shared/data/pbc --data ../shared/data/bccd --data-split train \
		--out runs/dino-lite0-cpu --global-size 128 --local-size 64 --local-crops 4 --batch-size 16 \
		--epochs 3 --warmup-epochs 1 --lr 0.002 --workers 1
	$(BIN)/hema-train fewshot --data ../shared/data/pbc --backbone runs/dino-lite0-cpu/checkpoint.pt \
		--head lr --labels-per-class 50 --repeats 10 --out runs/fewshot-dino-lr50

# The README's MDD comparison: PBC (train split) -> BCCD, source-only vs MDD (about 10 min each on 2 cores).
MDD_RUN := --source ../shared/data/pbc --target ../shared/data/bccd --image-size 128 --batch-size 24 \
	--epochs 10 --iters-per-epoch 40 --grl-max-iters 200 --workers 2
mdd-cpu: install
	$(BIN)/hema-train adapt $(MDD_RUN) --trade-off 0 --out runs/source-only
	$(BIN)/hema-train adapt $(MDD_RUN) --out runs/mdd

clean:
	rm -rf build .pytest_cache
