# `load test_helper` in tests/vm/*.bats: the common helpers plus the VM ones.
source "$(dirname "${BASH_SOURCE[0]}")/../test_helper.bash"
source "$(dirname "${BASH_SOURCE[0]}")/vm.bash"
