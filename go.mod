module github.com/avocet-mqtt/avocet

go 1.26
