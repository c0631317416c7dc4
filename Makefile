# Two commands (README): `make figures` runs every notebook and writes figures/; `make test` runs the tests.
# Both create .venv on first use; nothing needs to be installed by hand beyond Python 3.10+ and pip.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
# Use the offline benchmark copy of this workplace when it exists and nothing else was set.
SHARED_DATA := $(abspath $(wildcard ../shared/datasets))
export PAPERLIB_DATA ?= $(SHARED_DATA)

.PHONY: setup figures notebook-runs FORCE check-figures benchmarks test clean-venv cascnn-checkpoints cascnn-cont-checkpoints svoboda-checkpoints qgcn-checkpoints qgcn-cont-checkpoints \
        onetomany-checkpoints posterior-checkpoints paper-checkpoints gpu-lanes

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	# torch and torchvision first, as a pair that imports together (torch-fidelity needs torchvision)
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

# The datasets before each notebook (found, or downloaded and verified): without them the notebooks would fall
# back to demo images, and demo rows must never replace committed figures. A notebook runs again only when it, the
# package, one of the checkpoints it evaluates (listed below) or a data manifest is newer than its last complete run
# (build/notebooks/, written when it finishes); inside a run, scores and restorations come from the results cache
# when nothing they depend on changed (paperlib/cache.py). FRESH=1 runs every notebook and recomputes everything.
#
# The notebooks run side by side, JOBS at a time (default: one per core), each on CORES / JOBS torch threads: outside
# its networks a notebook is single-threaded Python (JPEG, metrics, figures), so two one-thread notebooks keep two
# cores busy where one two-thread notebook would leave one idle. The longest go first (cold run times, README);
# each notebook's output is printed when it finishes.
DATASETS := live1 classic5 set14 bsds500 imagenet-sample-1000
LONGEST_FIRST := qgcn cascnn posterior svoboda onetomany protocols
FOUND := $(basename $(notdir $(wildcard notebooks/*.ipynb)))
NOTEBOOKS := $(filter $(FOUND),$(LONGEST_FIRST)) $(filter-out $(LONGEST_FIRST),$(FOUND))
NOTEBOOK_RUNS := $(NOTEBOOKS:%=build/notebooks/%.ipynb)
NOTEBOOK_DEPS := $(shell find paperlib -type f ! -name '*.pyc') $(wildcard data_manifests/*) pyproject.toml
CORES := $(shell nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 1)
JOBS ?= $(shell echo $$(( $(CORES) < $(words $(NOTEBOOKS)) ? $(CORES) : $(words $(NOTEBOOKS)) )))
NOTEBOOK_THREADS ?= $(shell echo $$(( $(CORES) / $(JOBS) > 1 ? $(CORES) / $(JOBS) : 1 )))

figures: $(STAMP)
	@$(MAKE) --no-print-directory -j$(JOBS) $(if $(filter-out 1,$(JOBS)),-Otarget) notebook-runs

notebook-runs: $(NOTEBOOK_RUNS)

# The checkpoints each notebook evaluates (tests/test_makefile.py checks them against the names it loads)
build/notebooks/cascnn.ipynb: $(wildcard checkpoints/cascnn-*)
build/notebooks/svoboda.ipynb: $(wildcard checkpoints/l4-* checkpoints/l8-*)
build/notebooks/qgcn.ipynb: $(wildcard checkpoints/qgcn-* checkpoints/qcn-* checkpoints/edsr-* checkpoints/cascnn-q1-60.*)
build/notebooks/onetomany.ipynb: $(wildcard checkpoints/onetomany-*)
build/notebooks/posterior.ipynb: $(wildcard checkpoints/posterior-* checkpoints/qgcn-color.* checkpoints/cascnn-q1-60.*)

build/notebooks/%.ipynb: notebooks/%.ipynb $(NOTEBOOK_DEPS) $(if $(FRESH),FORCE) | $(STAMP)
	$(BIN)/python -m paperlib data fetch $(DATASETS)
	mkdir -p build/notebooks
	$(if $(FRESH),PAPERLIB_NO_CACHE=1) OMP_NUM_THREADS=$(NOTEBOOK_THREADS) $(BIN)/papermill --cwd notebooks \
	  $(if $(filter-out 1,$(JOBS)),--no-progress-bar) $< $(@:.ipynb=.part.ipynb)
	mv $(@:.ipynb=.part.ipynb) $@

FORCE:

# Pinned cells of every committed table recomputed from the committed weights, fresh (no cache).
check-figures: $(STAMP)
	$(BIN)/python -m paperlib check-figures

# Speed and memory on this machine, written to figures/benchmarks/ with the CPU named. Hours on 2 cores
# (bench_notebooks runs every notebook cold and warm on the threads `make figures` gives it, then all of them warm,
# side by side as `make figures` runs them, over the user's results cache). Run it on a quiet machine.
benchmarks: $(STAMP)
	$(BIN)/python benchmarks/bench_inference.py
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_recipes.py
	$(BIN)/python benchmarks/bench_large_photo.py
	$(BIN)/python benchmarks/bench_diffjpeg.py
	$(BIN)/python benchmarks/bench_metrics.py
	OMP_NUM_THREADS=$(NOTEBOOK_THREADS) $(BIN)/python benchmarks/bench_notebooks.py --tests --notebooks $(NOTEBOOKS)
	$(BIN)/python benchmarks/bench_notebooks.py --warm-only --jobs $(JOBS) --notebooks $(NOTEBOOKS)

# CI runs on whatever CPU it gets (AVX-512 with native bf16, or AVX2 only): the training paths run a second
# time with PyTorch's and oneDNN's own instruction-set switches, so an AVX-512 machine also checks what an AVX2
# one would do. A CPU whose kernels dispatch at AVX2 already would only repeat the first pass, so it skips it.
ISA_AVX2 := ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2
test: $(STAMP)
	$(BIN)/python -m pytest
	@if [ "$$($(BIN)/python -c 'import torch; print(torch.backends.cpu.get_cpu_capability())')" = AVX2 ]; then \
	  echo "make test: the AVX2 pass (pytest -m isa) is skipped: this CPU's kernels dispatch at AVX2 already"; \
	else echo "$(ISA_AVX2) $(BIN)/python -m pytest -q -m isa"; $(ISA_AVX2) $(BIN)/python -m pytest -q -m isa; fi

clean-venv:
	rm -rf $(VENV)

# How the committed CAS-CNN checkpoints were trained (`cpu` budget; hours on this 2-core CPU).
# Resumable: rerun after an interruption. QF20 first, the other QFs start from it (as in the paper).
CASCNN_DERIVED_STEPS ?= 1200
DEVICE ?= cpu
cascnn-checkpoints: $(STAMP)
	$(BIN)/python -m paperlib.models.cascnn --qf 20 --budget cpu --out runs/cascnn-q20 --publish
	set -e; for q in 10 40 60 80; do \
	  $(BIN)/python -m paperlib.models.cascnn --qf $$q --budget cpu --steps $(CASCNN_DERIVED_STEPS) \
	    --init-from checkpoints/cascnn-q20.pt --out runs/cascnn-q$$q --publish; \
	done

# Issue 13: `cascnn-q20` trained on with the output loss only (4,001 steps in resumable chunks over several
# sessions; `--steps` is the total), then QF 10/40/60/80 derived again from it exactly as above.
CASCNN_CONT_STEPS ?= 4001
cascnn-cont-checkpoints: $(STAMP)
	$(BIN)/python -m paperlib.models.cascnn --qf 20 --budget cpu --steps $(CASCNN_CONT_STEPS) --ft-fraction 1 \
	  --init-from checkpoints/cascnn-q20.pt --out runs/cascnn-q20-cont --publish cascnn-q20-cont
	set -e; for q in 10 40 60 80; do \
	  $(BIN)/python -m paperlib.models.cascnn --qf $$q --budget cpu --steps $(CASCNN_DERIVED_STEPS) \
	    --init-from checkpoints/cascnn-q20-cont.pt --out runs/cascnn-q$$q-cont --publish cascnn-q$$q-cont; \
	done

# How the committed L4/L8 checkpoints were trained (`cpu` budget; L4 ~7.5 min, L8 ~6.5 min each on this
# 2-core CPU; the issue-4 runs except l4-residual-q20 and l8-residual-q20 were run with `--device cuda` on one GPU,
# 16 at once, ~1 min each: see each checkpoint's manifest). Resumable. NAME:ARGS (commas = spaces).
SVOBODA_FILTERS = --filter-steps,25,50,200,1000
SVOBODA_RUNS = \
  l4-residual-q10:--arch,L4,--objective,residual,--qf,10,$(SVOBODA_FILTERS) \
  l4-direct-q10:--arch,L4,--objective,direct,--qf,10,$(SVOBODA_FILTERS) \
  l4-sobel-q10:--arch,L4,--objective,sobel,--qf,10,$(SVOBODA_FILTERS) \
  l4-residual-q20:--arch,L4,--qf,20 l8-residual-q20:--arch,L8,--qf,20 \
  l4-residual-q30:--arch,L4,--qf,30 l4-residual-q40:--arch,L4,--qf,40 \
  l4-residual-q50:--arch,L4,--qf,50 l4-residual-q60:--arch,L4,--qf,60 \
  l4-residual-q10-60:--arch,L4,--qf,10-60 \
  $(foreach n,4 16 64 256,l4-residual-q20-n$(n):--arch,L4,--qf,20,--n-images,$(n) \
                           l8-residual-q20-n$(n):--arch,L8,--qf,20,--n-images,$(n))

svoboda-checkpoints: $(STAMP)
	set -e; for run in $(SVOBODA_RUNS); do \
	  name=$${run%%:*}; args=$$(echo "$${run#*:}" | tr ',' ' '); \
	  $(BIN)/python -m paperlib.models.svoboda --budget cpu --device $(DEVICE) --out runs/$$name --publish $$name $$args; \
	done

# How the committed QGCN-family checkpoints were trained (`cpu` budget, n_res 8; ~22 min per network on this 2-core
# CPU for n_res 8, more for larger n_res; they were run with DEVICE=cuda on one GPU, 18 at once). Resumable.
# Runs marked --log-only publish their training log and manifest without the (too large) weights.
QGCN_RUNS = \
  qgcn-color:--variant,qgcn,--color qcn-color:--variant,qcn,--color edsr-color:--variant,edsr,--color \
  qgcn-gray:--variant,qgcn,--gray qcn-gray:--variant,qcn,--gray edsr-gray:--variant,edsr,--gray \
  $(foreach q,10 20 30 40 50,edsr-color-q$(q):--variant,edsr,--color,--qf,$(q)) \
  edsr-color-q10-50:--variant,edsr,--color,--qf,10-50 \
  edsr-color-p64:--variant,edsr,--color,--hard-start,3000,--log-only \
  qgcn-color-p64:--variant,qgcn,--color,--hard-start,3000,--log-only \
  $(foreach r,16 32 64,qgcn-color-r$(r):--variant,qgcn,--color,--n-res,$(r),--log-only)

qgcn-checkpoints: $(STAMP)
	set -e; for run in $(QGCN_RUNS); do \
	  name=$${run%%:*}; args=$$(echo "$${run#*:}" | tr ',' ' '); \
	  $(BIN)/python -m paperlib.models.qgcn --budget cpu --device $(DEVICE) --val set14 --out runs/$$name \
	    --publish $$name $$args; \
	done
	# Table III's CAS-CNN over QF 1-60 (this project's CAS-CNN recipe, validated on Set14, not the test sets)
	$(BIN)/python -m paperlib.models.cascnn --qf 1-60 --budget cpu --device $(DEVICE) --val set14 \
	  --out runs/cascnn-q1-60 --publish

# Issue 13: `qgcn-gray`, whose validation curve was still rising, trained on: the same cpu recipe run four times more
# from its weights (3,000 steps, 64x64 then 256x256 patches, the same learning-rate schedule), until a round gained
# less than 0.02 dB of validation IPSNR per 1,000 steps (the fourth: +0.034 dB in 3,000). Resumable.
qgcn-cont-checkpoints: $(STAMP)
	$(BIN)/python -m paperlib.models.qgcn --variant qgcn --gray --budget cpu --device $(DEVICE) --val set14 \
	  --init-from checkpoints/qgcn-gray.pt --out runs/qgcn-gray-cont --publish qgcn-gray-cont
	$(BIN)/python -m paperlib.models.qgcn --variant qgcn --gray --budget cpu --device $(DEVICE) --val set14 \
	  --init-from checkpoints/qgcn-gray-cont.pt --out runs/qgcn-gray-cont2 --publish qgcn-gray-cont2
	$(BIN)/python -m paperlib.models.qgcn --variant qgcn --gray --budget cpu --device $(DEVICE) --val set14 \
	  --init-from checkpoints/qgcn-gray-cont2.pt --out runs/qgcn-gray-cont3 --publish qgcn-gray-cont3
	$(BIN)/python -m paperlib.models.qgcn --variant qgcn --gray --budget cpu --device $(DEVICE) --val set14 \
	  --init-from checkpoints/qgcn-gray-cont3.pt --out runs/qgcn-gray-cont4 --publish qgcn-gray-cont4

# The `paper` budgets on a lent GPU (issue 13), in priority order: CAS-CNN QF20, the other CAS-CNN QFs from it,
# QGCN colour and gray at n_res 32, L8 QF20. One call trains for at most PAPER_SECONDS in all (a device command
# may run 10 minutes), skips networks already published under their -paper names, resumes a run whose folder is
# still there (a warm device keeps runs/ between calls) and publishes each network that finishes. Nothing here
# downloads: point PAPERLIB_DATA at a training pack (`python -m paperlib data pack`) and PY at a Python that
# holds torch and paperlib's dependencies. The procedure (what travels, what comes back): docs/cpu-training.md.
# Check it on a CPU with PAPER_BUDGET=smoke.
empty :=
space := $(empty) $(empty)
comma := ,
PAPER_SECONDS ?= 480
PAPER_BUDGET ?= paper
PY ?= $(BIN)/python
PAPER_RUNS = \
  cascnn-q20-paper:cascnn:--qf,20 \
  $(foreach q,10 40 60 80,cascnn-q$(q)-paper:cascnn:--qf,$(q),--init-from,checkpoints/cascnn-q20-paper.pt) \
  qgcn-color-paper:qgcn:--variant,qgcn,--color,--n-res,32 \
  qgcn-gray-paper:qgcn:--variant,qgcn,--gray,--n-res,32 \
  l8-residual-q20-paper:svoboda:--arch,L8,--qf,20

paper-checkpoints:   # one lane of gpu-lanes (below): the runs one after another, each with --budget $(PAPER_BUDGET)
	@$(MAKE) --no-print-directory gpu-lanes \
	  GPU_LANES="$(subst $(space),+,$(strip $(foreach r,$(PAPER_RUNS),$(r),--budget,$(PAPER_BUDGET))))"

# Several networks side by side on one lent GPU (a small network leaves most of an H100/H200 idle). Each word of
# GPU_LANES is a lane: runs joined by '+', trained one after another; the lanes run at the same time, all within
# PAPER_SECONDS. A run is NAME:RECIPE:ARGS (commas = spaces) and names its own budget; GPU_EXTRA (commas = spaces)
# is appended to every run, e.g. GPU_EXTRA=--budget,smoke,--steps,4 DEVICE=cpu to check it on a CPU. Networks
# already published are skipped; each finished one is published into checkpoints/; a lane stops at its first run
# that does not finish (a later run may start from it; rerun to resume); each run's output goes to runs/NAME.out.
# The lanes of the session of 2026-11-28: CAS-CNN QF20 with the paper's recipe (120x120 crops, batch 20, FT for the
# last 20 %) for the steps that fit one call, the eight One-to-Many networks at their `cpu` budget, one lane each,
# and Fig. 2's lambda_C sweep of the posterior sampler one after another.
GPU_THREADS ?= 1
GPU_EXTRA ?=
GPU_LANES = \
  cascnn-q20-gpu:cascnn:--qf,20,--budget,paper,--steps,24000 \
  $(foreach r,$(ONETOMANY_RUNS),$(subst :,:onetomany:--budget$(comma)cpu$(comma)--no-progress$(comma),$(r))) \
  $(subst $(space),+,$(strip $(foreach r,$(filter posterior-color-q5-%,$(POSTERIOR_RUNS)),\
    $(subst :,:posterior:--budget$(comma)cpu$(comma)--no-progress$(comma),$(r)))))

gpu-lanes:
	@end=$$(( $$(date +%s) + $(PAPER_SECONDS) )); mkdir -p runs; \
	for lane in $(GPU_LANES); do ( \
	  for run in $$(echo "$$lane" | tr '+' ' '); do \
	    name=$${run%%:*}; rest=$${run#*:}; recipe=$${rest%%:*}; args=$$(echo "$${rest#*:}" | tr ',' ' '); \
	    if [ -f checkpoints/$$name.json ]; then echo "$$name: published, skipped"; continue; fi; \
	    left=$$(( end - $$(date +%s) )); \
	    if [ $$left -lt 30 ]; then echo "$$name and later in its lane: no time left"; break; fi; \
	    echo "$$name: started, at most $$left s"; \
	    if OMP_NUM_THREADS=$(GPU_THREADS) $(PY) -m paperlib.models.$$recipe --device $(DEVICE) --out runs/$$name \
	         --time-budget $$left --publish $$name $$args $(subst $(comma),$(space),$(GPU_EXTRA)) >runs/$$name.out 2>&1; \
	    then echo "$$name: $$(grep '^step ' runs/$$name.out | tail -n 1)"; \
	    else echo "$$name: FAILED, see runs/$$name.out"; tail -n 3 runs/$$name.out; fi; \
	    if [ ! -f checkpoints/$$name.json ]; then echo "$$name: not finished; later runs of its lane wait for the next call"; break; fi; \
	  done ) & \
	done; wait

# How the committed One-to-Many networks are trained (`cpu` budget: 3,000 steps of 16 crops of 48x48, D from step
# 1,000). Measured on this shared 2-core CPU (load 4-6): ~4 s per Baseline step, ~14 s per One-to-Many step with D,
# so hours per Baseline and most of a day per One-to-Many network; add DEVICE=cuda for a GPU. Resumable.
# NAME:ARGS (commas = spaces).
# The Baseline at QF 5/10/20 (Table 2); One-to-Many gray and colour at QF 5 (Figs. 5-7); the Fig. 8 ablations at
# QF 5 (onetomany_eval.ABLATIONS): 8a L_percept alone without shift-and-average, 8b L_percept alone,
# 8c L_percept + L_natural. L_percept uses VGG-19 relu5_4 where its weights are found, else the labelled stand-in.
ONETOMANY_RUNS = \
  $(foreach q,5 10 20,onetomany-baseline-gray-q$(q):--kind,baseline,--gray,--qf,$(q)) \
  onetomany-gray-q5:--kind,onetomany,--gray,--qf,5 \
  onetomany-color-q5:--kind,onetomany,--color,--qf,5 \
  onetomany-gray-q5-percept-noshift:--kind,onetomany,--gray,--qf,5,--natural,0,--jpeg,0,--no-shift-average \
  onetomany-gray-q5-percept:--kind,onetomany,--gray,--qf,5,--natural,0,--jpeg,0 \
  onetomany-gray-q5-percept-natural:--kind,onetomany,--gray,--qf,5,--jpeg,0

onetomany-checkpoints: $(STAMP)
	set -e; for run in $(ONETOMANY_RUNS); do \
	  name=$${run%%:*}; args=$$(echo "$${run#*:}" | tr ',' ' '); \
	  $(BIN)/python -m paperlib.models.onetomany --budget cpu --device $(DEVICE) --out runs/$$name \
	    --publish $$name $$args; \
	done

# How the committed posterior-sampling networks (Man et al. 2023) are trained (`cpu` budget: 700 steps of 8 crops of
# 64x64 with every loss term, Ours-MSE 10,000 steps; paperlib/models/posterior.py). Measured on this shared 2-core CPU
# with one thread: 2.0-2.7 s per posterior step at load ~3 (4-6 s at load 5-6), 0.16-0.33 s per Ours-MSE step, so
# about an hour per network; two threads were slower there (OpenMP barriers), hence POSTERIOR_THREADS ?= 1
# (OMP_NUM_THREADS; raise it on a dedicated machine). Add DEVICE=cuda for a GPU. Resumable. Ours-MSE first: the second-moment rows use it as X̄ (--mmse).
# NAME:ARGS (commas = spaces): Table 1's rows (posterior_eval.TABLE1), then Fig. 2's lambda_C sweep at QF 5
# (GAN + C + FM, posterior_eval.SWEEP).
POSTERIOR_THREADS ?= 1
POSTERIOR_RUNS = \
  posterior-color-mse:--kind,mse \
  posterior-color-perceptual-baseline:--kind,posterior,--consistency,0,--second-moment,0 \
  posterior-color-baseline:--kind,posterior,--first-moment,0,--perceptual,0,--second-moment,0 \
  posterior-color-fm:--kind,posterior,--perceptual,0,--second-moment,0 \
  posterior-color-vgg:--kind,posterior,--second-moment,0 \
  posterior-color-sm10:--kind,posterior,--second-moment,10,--mmse,posterior-color-mse \
  posterior-color:--kind,posterior,--mmse,posterior-color-mse \
  posterior-color-q5-c0:--kind,posterior,--qf,5,--consistency,0,--perceptual,0,--second-moment,0 \
  posterior-color-q5-c0.1:--kind,posterior,--qf,5,--consistency,0.1,--perceptual,0,--second-moment,0 \
  posterior-color-q5-c1:--kind,posterior,--qf,5,--consistency,1,--perceptual,0,--second-moment,0 \
  posterior-color-q5-c5:--kind,posterior,--qf,5,--consistency,5,--perceptual,0,--second-moment,0 \
  posterior-color-q5-c10:--kind,posterior,--qf,5,--consistency,10,--perceptual,0,--second-moment,0

posterior-checkpoints: $(STAMP)
	set -e; for run in $(POSTERIOR_RUNS); do \
	  name=$${run%%:*}; args=$$(echo "$${run#*:}" | tr ',' ' '); \
	  OMP_NUM_THREADS=$(POSTERIOR_THREADS) $(BIN)/python -m paperlib.models.posterior --budget cpu --device $(DEVICE) \
	    --out runs/$$name --publish $$name $$args; \
	done
