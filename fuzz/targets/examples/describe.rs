//! Prints the structured input a fuzz input file decodes to, then runs it.
//!
//! `cargo run -p tether-fuzz-targets --example describe -- <target> <file>`

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, target, file] = &args[..] else {
        eprintln!("usage: describe <frame_decode|session|endpoint|pair> <file>");
        std::process::exit(2);
    };
    let data = std::fs::read(file).expect("readable input");
    let describe = match target.as_str() {
        "frame_decode" => tether_fuzz_targets::frame_decode::describe,
        "session" => tether_fuzz_targets::session::describe,
        "endpoint" => tether_fuzz_targets::endpoint::describe,
        "pair" => tether_fuzz_targets::pair::describe,
        _ => panic!("unknown target {target}"),
    };
    println!("{}", describe(&data));
    let (_, run) = tether_fuzz_targets::TARGETS.iter().find(|(n, _)| n == target).expect("target");
    run(&data);
    println!("passed");
}
