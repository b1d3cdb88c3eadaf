module pilotfish.dev/testenv/pause

go 1.24
