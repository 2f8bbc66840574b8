module github.com/lemctl/lemctl

go 1.26

require github.com/lemctl/lemctl/sdk v0.0.0

replace github.com/lemctl/lemctl/sdk => ./sdk
