# fsck.exfat: damage a small image, repair it with an undo file, roll back.
k=${1:-./kbox}
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
mkdir -p "$d/tree/photos"
echo "holiday" > "$d/tree/photos/beach.txt"
head -c 100000 /dev/urandom > "$d/tree/photos/big.raw"
$k mkfs.exfat -q -d "$d/tree" "$d/card.img" 32M
echo "\$ fsck.exfat -n card.img        # a fresh image"
$k fsck.exfat -n "$d/card.img"
# Damage: spoil the main boot region (its checksum no longer matches).
printf '\xaa' | dd of="$d/card.img" bs=1 seek=200 conv=notrunc status=none
echo "\$ fsck.exfat -n card.img        # after damaging the boot region"
$k fsck.exfat -n "$d/card.img" 2>&1; echo "exit $?"
echo "\$ fsck.exfat -y -z card.undo card.img"
$k fsck.exfat -y -z "$d/card.undo" "$d/card.img" 2>&1; echo "exit $?"
echo "\$ fsck.exfat -n --json card.img"
$k fsck.exfat -n --json "$d/card.img"
echo "\$ fsck.exfat --rollback card.undo card.img   # back to the damaged state"
$k fsck.exfat --rollback "$d/card.undo" "$d/card.img"
$k fsck.exfat -n "$d/card.img" 2>&1 | head -1
