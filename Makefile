# hema: set up, demo, test, rebuild the embedded default model.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.hema-installed
HEMA_DATA ?= ../shared/data/pbc
DEFAULT_MODEL := runtime/models/hema-default.onnx

.PHONY: install browser demo test test-fast review-page-png verification-page-png default-model dino-cpu mdd-cpu edge-models bench clean

install: $(STAMP)

# Every extra but tensorrt (its libraries need an NVIDIA GPU machine). torch 2.14.1 / torchvision 0.29.1 are
# pinned in pyproject.toml's [train] extra.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[train,export,openvino,dev]'
	touch $(STAMP)

# Headless Chromium for tests/runtime/test_html_report.py (report.html in a real browser): Debian's package, installed
# as root when missing. Without it the test is skipped (fails where CI is set). make demo does not need it.
browser:
	@command -v chromium >/dev/null 2>&1 || test -x /usr/bin/chromium || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
		else echo "note: no chromium and not root: run 'sudo apt-get install -y chromium' or the browser test is skipped"; fi; }

demo: install
	$(BIN)/hema-infer classify $(HEMA_DATA) --out build/demo

test: install browser
	$(BIN)/python -m pytest -q

test-fast: install browser
	$(BIN)/python -m pytest -q -m "not slow"

# The README's screenshot of report.html: the browser test's page (real cells, two slides, one unreadable file).
review-page-png: install browser
	HEMA_REVIEW_PAGE_PNG=docs/review-page.png $(BIN)/python -m pytest -q tests/runtime/test_html_report.py -k chromium

# The README's screenshot of the verification app (hema-infer review): its browser test's page (real cells).
verification-page-png: install browser
	HEMA_VERIFY_PAGE_PNG=docs/verification-page.png $(BIN)/python -m pytest -q tests/runtime/test_verification_browser.py

# The default model: EfficientNet-Lite0 fine-tuned from ImageNet on the train splits of both labs (PBC and BCCD) on
# the cell view (stain-standardised, centred on the cell) with lab-shift augmentation, first 8 epochs at 160 px,
# then 4 at 224 px (progressive resizing; about 50 min on 2 cores in all), then a logistic-regression head on its
# features of both labs' train splits; scored on PBC's test split.
TWO_LABS := --data ../shared/data/pbc --more-data ../shared/data/bccd
default-model: install
	$(BIN)/hema-train supervised $(TWO_LABS) --view cell --lab-shift --image-size 160 --out runs/default-backbone-160 \
		--epochs 8 --batch-size 32 --workers 1
	$(BIN)/hema-train supervised $(TWO_LABS) --view cell --lab-shift --image-size 224 --out runs/default-backbone \
		--backbone runs/default-backbone-160/best.pt --epochs 4 --batch-size 32 --workers 1
	$(BIN)/hema-train fewshot $(TWO_LABS) --backbone runs/default-backbone/best.pt --head lr --labels-per-class 0 \
		--repeats 1 --out build/default-head
	$(BIN)/hema-export onnx --head build/default-head --out $(DEFAULT_MODEL)

# The README's DINO run: 3 epochs on the PBC and BCCD train splits from ImageNet Lite0 (about 25 min on 2 cores).
dino-cpu: install
	$(BIN)/hema-train ssl --cells ../shared/data/pbc --cells ../shared/data/bccd --split train \
		--out runs/dino-lite0-cpu --global-size 128 --local-size 64 --local-crops 4 --batch-size 16 \
		--epochs 3 --warmup-epochs 1 --lr 0.002 --workers 1
	$(BIN)/hema-train fewshot --data ../shared/data/pbc --backbone runs/dino-lite0-cpu/checkpoint.pt \
		--head lr --labels-per-class 50 --repeats 10 --out runs/fewshot-dino-lr50

# The README's MDD comparison: PBC (train split) -> BCCD, source-only vs MDD (about 10 min each on 2 cores).
MDD_RUN := --data ../shared/data/pbc --cells ../shared/data/bccd --image-size 128 --batch-size 24 \
	--epochs 10 --iters-per-epoch 40 --grl-max-iters 200 --workers 2
mdd-cpu: install
	$(BIN)/hema-train adapt $(MDD_RUN) --trade-off 0 --out runs/source-only
	$(BIN)/hema-train adapt $(MDD_RUN) --out runs/mdd

# Edge artifacts of MODEL in build/edge: OpenVINO IR fp32, fp16 and int8, and ONNX Runtime int8. Each build's output
# ends in a log beside it (the make target) with "exit CODE after SECONDS s": rebuilt only when MODEL changes, and an
# INT8 export that its accuracy check refuses is not retried on every run (make bench shows the reason). Each INT8
# build (NNCF calibration, then the check on the test split) takes about a minute on 2 cores.
MODEL ?= $(DEFAULT_MODEL)
EDGE := build/edge
EDGE_STEM := $(EDGE)/$(basename $(notdir $(MODEL)))
EDGE_LOGS := $(EDGE_STEM)-fp32.log $(EDGE_STEM)-fp16.log $(EDGE_STEM)-int8.log $(EDGE_STEM).int8.log

# $(call edge_build,LOG,ARTIFACT,hema-export arguments)
define edge_build
	@mkdir -p $(EDGE) && rm -f $(2) $(basename $(2)).bin
	@echo "hema-export $(3)"
	@start=$$(date +%s); $(BIN)/hema-export $(3) > $(1).tmp 2>&1; status=$$?; \
		echo "exit $$status after $$(( $$(date +%s) - start )) s" >> $(1).tmp; mv $(1).tmp $(1); \
		grep -E '^(wrote|against|error)' $(1); tail -n 1 $(1)
endef

edge-models: install $(EDGE_LOGS)

$(EDGE_STEM)-fp32.log: $(MODEL) | $(STAMP)
	$(call edge_build,$@,$(EDGE_STEM)-fp32.xml,openvino --model $(MODEL) --out $(EDGE_STEM)-fp32.xml --precision fp32)

$(EDGE_STEM)-fp16.log: $(MODEL) | $(STAMP)
	$(call edge_build,$@,$(EDGE_STEM)-fp16.xml,openvino --model $(MODEL) --out $(EDGE_STEM)-fp16.xml --precision fp16 \
		--data $(HEMA_DATA))

$(EDGE_STEM)-int8.log: $(MODEL) | $(STAMP)
	$(call edge_build,$@,$(EDGE_STEM)-int8.xml,openvino --model $(MODEL) --out $(EDGE_STEM)-int8.xml --precision int8 \
		--data $(HEMA_DATA))

$(EDGE_STEM).int8.log: $(MODEL) | $(STAMP)
	$(call edge_build,$@,$(EDGE_STEM).int8.onnx,onnx-int8 --model $(MODEL) --out $(EDGE_STEM).int8.onnx \
		--data $(HEMA_DATA))

# Every engine of MODEL against PyTorch eager in one run: benchmarks/results/<model name>.json, .md and .png.
bench: install edge-models
	$(BIN)/python benchmarks/bench_engines.py --model $(MODEL) --edge $(EDGE) --data $(HEMA_DATA) \
		--out benchmarks/results

clean:
	rm -rf build .pytest_cache
