pub struct Component;
pub trait Tier {}
