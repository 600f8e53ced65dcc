# tune.exfat: relabel an image with an undo file, read it back, roll back.
k=${1:-./kbox}
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
$k mkfs.exfat -q -L CAMERA "$d/card.img" 32M
echo "\$ tune.exfat -l -i card.img"
$k tune.exfat -l -i "$d/card.img"
echo "\$ tune.exfat -v -z card.undo -L HOLIDAY -I 0x1234abcd -U random card.img"
$k tune.exfat -v -z "$d/card.undo" -L HOLIDAY -I 0x1234abcd -U random "$d/card.img" 2>&1
echo "\$ tune.exfat --json card.img"
$k tune.exfat --json "$d/card.img"
echo "\$ exfatlabel card.img"
$k exfatlabel "$d/card.img"
echo "\$ fsck.exfat --rollback card.undo card.img && exfatlabel card.img"
$k fsck.exfat --rollback "$d/card.undo" "$d/card.img" && $k exfatlabel "$d/card.img"
