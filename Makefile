# The two quick-start commands (README): `make run` and `make test`.
BUILD ?= build
MODEL ?= models/stories260K.gguf

.PHONY: all deps build run test clean

all: build

deps:
	@sh scripts/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

# hearth's main job: the daemon, in the foreground, serving the bundled model.
# Try `./build/cli/hearth ask "Once upon a time"` in a second terminal.
run: build
	./$(BUILD)/hearthd --foreground --model $(MODEL)

test: deps
	sh scripts/run-tests.sh

clean:
	rm -rf build build-asan build-fuzz
