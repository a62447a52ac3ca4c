fn main() -> std::process::ExitCode {
    uvmm_restore::main()
}
