# The README's commands. `make demo` and `make test` configure, build, then run.
BUILD ?= build
JOBS  ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Release

.PHONY: all configure build demo test bench loadtest fuzz clean

all: build

configure:
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

demo: build
	@bash scripts/demo

bench: build
	@$(BUILD)/heirloom bench

# `heirloom serve` under concurrent clients for 60 s (CLIENTS=16 SECONDS_=60 TOKENS=32): errors, p50/p99
# latency, tokens/s, and every response checked against the same request alone.
loadtest: build
	@bash bench/loadtest.sh $(BUILD)

# libFuzzer on the GGUF reader and model loader with ASan and UBSan, starting from the committed corpus
# (fuzz/corpus) and fresh seeds; new interesting inputs go to build-fuzz/corpus. FUZZ_SECONDS=60 by default.
FUZZ_SECONDS ?= 60
fuzz: build
	@cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Debug -DHEIRLOOM_NATIVE=OFF -DHEIRLOOM_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target fuzz_gguf
	@mkdir -p build-fuzz/corpus build-fuzz/seeds
	@$(BUILD)/heirloom_fuzz_seeds build-fuzz/seeds
	@build-fuzz/fuzz_gguf -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -max_len=65536 \
	  -artifact_prefix=build-fuzz/ build-fuzz/corpus fuzz/corpus build-fuzz/seeds

clean:
	rm -rf $(BUILD) build-fuzz
