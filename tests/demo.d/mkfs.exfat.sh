# mkfs.exfat: a sparse 2 TiB image in a few KiB, then a populated one.
k=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
say() { printf '\n$ %s\n' "$*"; "$@"; }
say "$k" mkfs.exfat -L DEMO "$dir/big.img" 2T
say du -h --apparent-size "$dir/big.img"
say du -h "$dir/big.img"
mkdir -p "$dir/tree/photos"
echo "hello from kbox" > "$dir/tree/readme.txt"
printf 'jpeg?' > "$dir/tree/photos/été 2026.jpg"
say "$k" mkfs.exfat -v -d "$dir/tree" -L Photos "$dir/small.img" 64M
command -v fsck.exfat >/dev/null && say fsck.exfat -n "$dir/small.img"
exit 0
