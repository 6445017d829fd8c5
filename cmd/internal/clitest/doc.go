// Package clitest holds the tests that every binary of the project shares:
// help, --version and usage errors, checked on the built binaries.
package clitest
