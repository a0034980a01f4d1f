# Sourced by the benchmark scripts: bench_build DIR ROOT [meson options...]
# configures DIR for ROOT (reconfigures it if it exists) with the options
# given, or by default as a release build (-O3, no assertions, no
# sanitizers, no tests or examples, the benches on), and builds
# presence-bench in it.
bench_build() {
    local dir=$1 src=$2
    shift 2
    local opts=("$@")
    if [[ ${#opts[@]} -eq 0 ]]; then
        opts=(--buildtype=release -Db_ndebug=true -Db_sanitize=none
              -Dtests=false -Dexamples=false -Dbench=true)
    fi
    if [[ -f $dir/meson-private/coredata.dat ]]; then
        meson setup --reconfigure "${opts[@]}" "$dir" "$src" >/dev/null
    else
        meson setup "${opts[@]}" "$dir" "$src" >/dev/null
    fi
    meson compile -C "$dir" presence-bench >/dev/null
}
