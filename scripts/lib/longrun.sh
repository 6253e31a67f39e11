# Shared by the long-run scripts (sourced): where progress lives, the binary,
# and the header every results file starts with.
#
# Progress: each script writes one file per finished unit of work under
# $state (written to a temporary name, then renamed, so an interrupted unit
# leaves nothing that looks finished). A second invocation skips the units
# whose files exist: it resumes. Remove $state to start over.

longrun_init() {
    name=$1
    cd "$(dirname "${BASH_SOURCE[0]}")/../.."
    state=${LONGRUN_DIR:-long-runs}/$name
    mkdir -p "$state"
    if [ -n "${FENCED_BIN:-}" ]; then
        bin=$FENCED_BIN
    else
        cargo build --quiet --profile sim -p fenced
        bin=target/sim/fenced
    fi
    bin=$(realpath "$bin")
}

# The header of a results file: date, commit, machine, parameters.
longrun_header() {
    echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "commit:   $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "machine:  $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GB", $2/1048576}' /proc/meminfo), $(uname -sr)"
    echo "params:   $*"
}
