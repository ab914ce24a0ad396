#[intercall::events]
pub struct Orders;

fn main() {}
