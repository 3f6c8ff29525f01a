# The two quick-start commands (README): `make run` and `make test`.
BUILD ?= build
MODEL ?= models/stories260K.gguf
PROMPT ?= Once upon a time

.PHONY: all deps build run test clean

all: build

deps:
	@sh scripts/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

# hearth's main job on the bundled default model (the daemon, once it exists).
run: build
	./$(BUILD)/cli/hearth generate -m $(MODEL) -p "$(PROMPT)" -n 200

test: deps
	sh scripts/run-tests.sh

clean:
	rm -rf build build-asan build-fuzz
