module example.com/spout-examples

go 1.19
