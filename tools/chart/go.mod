// Module chart draws docs/bench-fleet.png (wall seconds against fleet size,
// one panel per cluster profile) from the JSON results written by ./bench.
module github.com/revkit/revkit/tools/chart

go 1.26.0

require golang.org/x/image v0.48.0
