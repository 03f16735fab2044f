//! The words the demo catalog is made of. Departments and their categories
//! are fixed (URLs people bookmark); everything else is combined from these
//! lists by a seeded generator.

/// How a category's SKUs differ from each other.
#[derive(Debug, Clone, Copy)]
pub enum Axis {
    Colour,
    Size,
    ShoeSize,
    Storage,
    Volume,
    Format,
}

impl Axis {
    pub fn name(self) -> &'static str {
        match self {
            Axis::Colour => "colour",
            Axis::Size | Axis::ShoeSize | Axis::Volume => "size",
            Axis::Storage => "storage",
            Axis::Format => "format",
        }
    }

    /// Values in display order, and the price step each one adds (cents).
    pub fn values(self) -> (&'static [&'static str], i64) {
        match self {
            Axis::Colour => (&["Black", "White", "Navy", "Sand", "Forest Green", "Red"], 0),
            Axis::Size => (&["S", "M", "L", "XL", "XS"], 0),
            Axis::ShoeSize => (&["40", "41", "42", "43", "44", "38", "39", "45"], 0),
            Axis::Storage => (&["128 GB", "256 GB", "512 GB", "1 TB", "64 GB"], 10_000),
            Axis::Volume => (&["50 ml", "100 ml", "200 ml", "30 ml", "500 ml"], 500),
            Axis::Format => (&["Paperback", "Hardcover", "E-book", "Audiobook"], 400),
        }
    }
}

pub struct Leaf {
    pub slug: &'static str,
    pub name: &'static str,
    /// Nouns with a plausible price range in whole euros.
    pub nouns: &'static [(&'static str, i64, i64)],
    pub axis: Axis,
}

pub struct Department {
    pub slug: &'static str,
    pub name: &'static str,
    pub leaves: &'static [Leaf],
    pub materials: &'static [&'static str],
    pub features: &'static [&'static str],
}

pub const DEPARTMENTS: &[Department] = &[
    Department {
        slug: "electronics",
        name: "Electronics",
        leaves: &[
            Leaf { slug: "audio", name: "Audio", nouns: &[("Headphones", 39, 449), ("Earbuds", 19, 279), ("Bluetooth Speaker", 25, 399), ("Soundbar", 89, 899), ("Turntable", 119, 799)], axis: Axis::Colour },
            Leaf { slug: "phones-tablets", name: "Phones & Tablets", nouns: &[("Smartphone", 149, 1299), ("Tablet", 129, 1099), ("Phone", 99, 999), ("E-Reader", 79, 299)], axis: Axis::Storage },
            Leaf { slug: "computers", name: "Computers", nouns: &[("Laptop", 399, 2499), ("Mechanical Keyboard", 49, 249), ("Wireless Mouse", 15, 129), ("Monitor", 129, 1199), ("Webcam", 29, 199)], axis: Axis::Colour },
            Leaf { slug: "cameras", name: "Cameras", nouns: &[("Mirrorless Camera", 499, 2999), ("Action Camera", 99, 549), ("Camera Lens", 149, 1899), ("Tripod", 25, 249)], axis: Axis::Colour },
        ],
        materials: &["Aluminium", "Recycled plastic", "Magnesium alloy", "Glass and aluminium"],
        features: &["Up to 40 hours of battery life", "USB-C fast charging", "Bluetooth 5.3 with multipoint pairing", "A two-year manufacturer warranty", "Firmware updates over the air", "Low-latency mode for games and video"],
    },
    Department {
        slug: "home-kitchen",
        name: "Home & Kitchen",
        leaves: &[
            Leaf { slug: "kitchen", name: "Kitchen", nouns: &[("Chef's Knife", 29, 249), ("Dutch Oven", 49, 399), ("Frying Pan", 19, 159), ("Espresso Machine", 149, 1499), ("Kettle", 25, 149)], axis: Axis::Colour },
            Leaf { slug: "furniture", name: "Furniture", nouns: &[("Desk Chair", 89, 899), ("Bookshelf", 59, 499), ("Coffee Table", 79, 699), ("Floor Lamp", 39, 349)], axis: Axis::Colour },
            Leaf { slug: "bedding", name: "Bedding", nouns: &[("Duvet Cover", 39, 249), ("Pillow", 15, 99), ("Wool Blanket", 39, 229), ("Sheet Set", 29, 199)], axis: Axis::Size },
        ],
        materials: &["Stainless steel", "Cast iron", "Solid oak", "Stonewashed linen", "Organic cotton", "Walnut"],
        features: &["Dishwasher safe", "Oven safe to 260 °C", "Made to last for decades", "Certified free of harmful substances", "Easy to assemble in under 20 minutes"],
    },
    Department {
        slug: "fashion",
        name: "Fashion",
        leaves: &[
            Leaf { slug: "womens-clothing", name: "Women's Clothing", nouns: &[("Merino Sweater", 49, 199), ("Wrap Dress", 39, 249), ("Wool Coat", 129, 599), ("Linen Blouse", 29, 129)], axis: Axis::Size },
            Leaf { slug: "mens-clothing", name: "Men's Clothing", nouns: &[("Field Jacket", 89, 399), ("Selvedge Jeans", 59, 249), ("Oxford Shirt", 29, 129), ("Hoodie", 35, 149)], axis: Axis::Size },
            Leaf { slug: "shoes", name: "Shoes", nouns: &[("Running Shoes", 59, 229), ("Chelsea Boots", 99, 399), ("Sandals", 25, 149), ("Sneakers", 49, 199), ("Loafers", 69, 299)], axis: Axis::ShoeSize },
            Leaf { slug: "bags-accessories", name: "Bags & Accessories", nouns: &[("Backpack", 39, 299), ("Tote Bag", 19, 199), ("Leather Wallet", 19, 129), ("Sunglasses", 25, 249), ("Watch", 79, 899)], axis: Axis::Colour },
        ],
        materials: &["Merino wool", "Organic cotton", "Full-grain leather", "Recycled polyester", "Japanese denim", "Waxed canvas"],
        features: &["Machine washable at 30 °C", "Ethically made in Portugal", "Free returns within 30 days", "Cut for a relaxed fit", "Water-resistant finish"],
    },
    Department {
        slug: "sports-outdoors",
        name: "Sports & Outdoors",
        leaves: &[
            Leaf { slug: "camping", name: "Camping", nouns: &[("Tent", 79, 699), ("Sleeping Bag", 39, 349), ("Camping Stove", 29, 179), ("Headlamp", 15, 89)], axis: Axis::Colour },
            Leaf { slug: "fitness", name: "Fitness", nouns: &[("Yoga Mat", 19, 119), ("Dumbbell Set", 39, 299), ("Resistance Bands", 9, 49), ("Jump Rope", 9, 39), ("Rowing Machine", 299, 1499)], axis: Axis::Colour },
            Leaf { slug: "cycling", name: "Cycling", nouns: &[("Bike Helmet", 39, 249), ("Bike Light", 15, 129), ("Cycling Jersey", 39, 149), ("Bike Lock", 25, 129)], axis: Axis::Size },
        ],
        materials: &["Ripstop nylon", "Natural rubber", "Carbon fibre", "Recycled polyester", "Aluminium"],
        features: &["Weighs under a kilogram", "Tested in alpine conditions", "Packs down small", "Reflective details for low light", "Lifetime repair service"],
    },
    Department {
        slug: "beauty",
        name: "Beauty & Care",
        leaves: &[
            Leaf { slug: "skincare", name: "Skincare", nouns: &[("Face Serum", 12, 89), ("Moisturiser", 9, 79), ("Cleanser", 7, 39), ("Sunscreen SPF 50", 9, 39)], axis: Axis::Volume },
            Leaf { slug: "hair-care", name: "Hair Care", nouns: &[("Shampoo", 5, 39), ("Hair Dryer", 39, 399), ("Hair Brush", 9, 59), ("Conditioner", 5, 39)], axis: Axis::Volume },
        ],
        materials: &["Vegan formula", "Fragrance free", "Bamboo", "Recyclable glass"],
        features: &["Dermatologically tested", "Suitable for sensitive skin", "Never tested on animals", "Refillable packaging"],
    },
    Department {
        slug: "books-games",
        name: "Books & Games",
        leaves: &[
            Leaf { slug: "books", name: "Books", nouns: &[("Novel", 8, 29), ("Cookbook", 15, 49), ("Field Guide", 12, 39), ("Travel Guide", 10, 35), ("Graphic Novel", 12, 39)], axis: Axis::Format },
            Leaf { slug: "board-games", name: "Board Games", nouns: &[("Board Game", 19, 89), ("Jigsaw Puzzle", 12, 49), ("Card Game", 9, 29), ("Chess Set", 25, 199)], axis: Axis::Format },
            Leaf { slug: "toys", name: "Toys", nouns: &[("Building Blocks", 15, 149), ("Marble Run", 25, 129), ("Remote Control Car", 29, 199), ("Plush Bear", 9, 49)], axis: Axis::Colour },
        ],
        materials: &["FSC-certified paper", "Beech wood", "Recycled cardboard", "Child-safe plastic"],
        features: &["For ages 8 and up", "Award-winning design", "Printed on recycled paper", "Plays in about an hour"],
    },
    Department {
        slug: "garden",
        name: "Garden",
        leaves: &[
            Leaf { slug: "garden-tools", name: "Garden Tools", nouns: &[("Pruning Shears", 15, 79), ("Hedge Trimmer", 49, 299), ("Garden Hose", 19, 99), ("Lawn Mower", 149, 899)], axis: Axis::Colour },
            Leaf { slug: "outdoor-living", name: "Outdoor Living", nouns: &[("Raised Planter", 39, 299), ("Solar Lights", 15, 89), ("Parasol", 49, 399), ("Garden Bench", 99, 599)], axis: Axis::Colour },
        ],
        materials: &["Untreated cedar", "Powder-coated steel", "Stainless steel", "Weatherproof polyester"],
        features: &["Weatherproof all year round", "Cordless, 18 V battery", "Ten-year rust guarantee", "Folds flat for winter storage"],
    },
];

pub const ADJECTIVES: &[&str] = &[
    "Pro", "Ultra", "Classic", "Compact", "Wireless", "Premium", "Essential", "Eco", "Smart", "Lite", "Max", "Air",
    "Studio", "Travel", "Heritage", "Urban", "Alpine", "Nordic", "Everyday", "Signature",
];

pub const MODELS: &[&str] = &["X1", "X2", "S3", "300", "500", "Mk II", "Plus", "One", "Go", "2", "Neo", "V", "7", "Edge"];

pub const BRAND_HEADS: &[&str] = &[
    "Aur", "Nim", "Vol", "Zen", "Kor", "Lum", "Sol", "Ter", "Vex", "Cal", "Ori", "Pax", "Quin", "Rho", "Sky", "Tal",
    "Ulm", "Ves", "Wyn", "Yar",
];
pub const BRAND_TAILS: &[&str] = &["ora", "bus", "tex", "tra", "ix", "ena", "ara", "on", "ic", "ent"];

pub const SELLER_HEADS: &[&str] = &[
    "Northwind", "Blue Harbor", "Oak & Ash", "Copperline", "Saltmarsh", "Juniper", "Red Kite", "Meadowlark", "Granite",
    "Lantern",
];
pub const SELLER_TAILS: &[&str] = &["Traders", "Supply Co.", "Goods", "Outfitters", "Store"];

pub const USES: &[&str] = &[
    "everyday use", "people who want one thing that works", "long weekends away", "small flats and big ideas",
    "gifting", "the daily commute", "getting started", "serious enthusiasts",
];

pub const ORIGINS: &[&str] = &["Portugal", "Germany", "Japan", "Denmark", "Italy", "Vietnam", "Poland", "Sweden"];
