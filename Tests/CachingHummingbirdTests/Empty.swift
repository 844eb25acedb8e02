// Tests are compiled only with the package trait; see the other files.
