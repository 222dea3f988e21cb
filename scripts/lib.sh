# Shared helpers for fingate's scripts. Source it; do not run it.

# ensure_packages CMD:PACKAGE ... — installs the Debian package for each missing command.
ensure_packages() {
  local missing=()
  for pair in "$@"; do
    local cmd=${pair%%:*} pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  install_packages "${missing[@]}"
}

# install_packages PACKAGE ... — installs Debian packages (for those no command reveals).
install_packages() {
  echo "==> installing: $*" >&2
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# The packages each task needs (command:package).
BUILD_PACKAGES=(cmake:cmake cc:gcc)
TEST_PACKAGES=(redis-server:redis-server promtool:prometheus curl:curl openssl:openssl h2load:nghttp2-client testssl:testssl.sh)
BROWSER_PACKAGES=(chromium:chromium chromedriver:chromium-driver)
BENCH_PACKAGES=(nginx:nginx wrk:wrk taskset:util-linux)
# scripts/check-deploy (it also installs python3-venv when venv is missing).
DEPLOY_PACKAGES=(promtool:prometheus systemd-analyze:systemd openssl:openssl python3:python3)
