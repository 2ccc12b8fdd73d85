// Loaded before every test file (bunfig.toml). Keeps the test environment predictable.
process.env.SECUMON_LOG_LEVEL ??= "warn";
