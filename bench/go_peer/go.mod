module pi0-go-peer

go 1.19
