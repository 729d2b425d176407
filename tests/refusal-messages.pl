#!/usr/bin/perl
# SPDX-License-Identifier: GPL-2.0
#
# tests/refusal-messages.pl FILE.c...: prints every message a table can
# be refused with (what the constructor puts in ti->error), one a line:
# the string literals assigned to ->error, those that end an entry of a
# table of options or signatures ("...", }), and #define *_ERROR "...".
# make lint compares them with the admin guide's *Refusals*.
use strict;
use warnings;

my $lit = qr/"((?:[^"\\]|\\.)*)"/;
my %seen;
local $/;
for my $f (@ARGV) {
	open(my $fh, '<', $f) or die "$f: $!\n";
	my $s = <$fh>;
	my @m;
	while ($s =~ /->error\s*=((?:\s*(?:"(?:[^"\\]|\\.)*"|[^";]))*);/g) {
		my $e = $1;
		push @m, $1 while $e =~ /$lit/g;
	}
	push @m, $1 while $s =~ /$lit\s*\}/g;
	push @m, $1 while $s =~ /#define\s+\w*_ERROR\s*\\?\s*$lit/g;
	for (@m) {
		next unless / /;	# option names, not messages
		print "$_\n" unless $seen{$_}++;
	}
}
