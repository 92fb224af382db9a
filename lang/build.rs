fn main() {
    lalrpop::process_src().expect("the VInet grammar compiles");
}
