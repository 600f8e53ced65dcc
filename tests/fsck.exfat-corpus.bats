#!/usr/bin/env bats
# The exfatprogs corruption corpus (../shared/exfat-corpus) and its pass rule:
# a read-only check reports the damage, a repair (-y plus the case's #OPTS)
# exits 0 or 1, and afterwards both kbox's and Debian's exfatprogs read-only
# checks find the image clean. Each case runs with ./kbox and, when built,
# with the sanitizer build ./kbox-asan.
load test_helper

setup() {
	require_applet fsck.exfat
	require_shared exfat-corpus
	command -v /usr/sbin/fsck.exfat >/dev/null || skip "needs Debian's exfatprogs (fsck.exfat)"
}

corpus_case() {
	local name=$1 dir=$SHARED/exfat-corpus/$1 opts bin img
	[ -f "$dir/exfat.img.tar.xz" ] || skip "$dir/exfat.img.tar.xz is absent"
	opts=
	[ -f "$dir/config" ] && opts=$(sed -n 's/^#OPTS:[[:space:]]*//p' "$dir/config")
	for bin in $(builds); do
		rm -rf "$BATS_TEST_TMPDIR/img" && mkdir "$BATS_TEST_TMPDIR/img"
		# GNU tar restores the sparse members as sparse files (up to 2 TiB apparent).
		tar -xf "$dir/exfat.img.tar.xz" -C "$BATS_TEST_TMPDIR/img"
		img=$BATS_TEST_TMPDIR/img/exfat.img

		run -4 --separate-stderr "$bin" fsck.exfat -n "$img"
		[ -n "$stderr" ] || fail "$name: no diagnosis on stderr"
		run "$bin" fsck.exfat -y $opts "$img"
		[ "$status" -eq 0 ] || [ "$status" -eq 1 ] || fail "$name: repair exited $status: $output"
		run -0 "$bin" fsck.exfat -n "$img"
		run -0 /usr/sbin/fsck.exfat -n "$img"
	done
}

@test "corpus 2tb_disk: damage beyond 2 TB" { corpus_case 2tb_disk; }
@test "corpus bad_bitmap: chain cluster marked free" { corpus_case bad_bitmap; }
@test "corpus bad_bitmap_size: allocation bitmap size" { corpus_case bad_bitmap_size; }
@test "corpus bad_dentries: entry types and set checksums" { corpus_case bad_dentries; }
@test "corpus bad_dentries2: SecondaryCount and vendor entries" { corpus_case bad_dentries2; }
@test "corpus bad_file_size: size vs chain" { corpus_case bad_file_size; }
@test "corpus bad_first_clu: first cluster" { corpus_case bad_first_clu; }
@test "corpus bad_num_chain: BAD and out-of-range clusters" { corpus_case bad_num_chain; }
@test "corpus bad_root: root directory chain" { corpus_case bad_root; }
@test "corpus bs_bad_csum: boot region checksum" { corpus_case bs_bad_csum; }
@test "corpus de_bad_csum: entry set checksum" { corpus_case de_bad_csum; }
@test "corpus duplicate_clu: cross-linked cluster" { corpus_case duplicate_clu; }
@test "corpus duplicated_name: duplicate names" { corpus_case duplicated_name; }
@test "corpus file_invalid_clus: mixed chain errors" { corpus_case file_invalid_clus; }
@test "corpus invalid_name: invalid characters" { corpus_case invalid_name; }
@test "corpus large_file_invalid_clus: 192 MB file, broken chain" { corpus_case large_file_invalid_clus; }
@test "corpus loop_chain: loop in a chain" { corpus_case loop_chain; }
@test "corpus rename_dot_entry: . and .. names" { corpus_case rename_dot_entry; }
@test "corpus unused-dentries: entries after the end mark" { corpus_case unused-dentries; }
