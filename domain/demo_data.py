"""Word lists for the demo storefront: common names per country, places, a category tree and brands.

Names are space-separated, ``_`` stands for a space inside a name (``van_den_Berg``), and
``display/ascii`` gives a name whose e-mail spelling differs (Japanese).
Brands are invented.
"""

from __future__ import annotations

# country: (weight, female first names, male first names, last names, [(region, zone, locale)])
COUNTRIES: dict[str, tuple[int, str, str, str, list[tuple[str, str, str]]]] = {
    "DE": (
        22,
        "Anna Emma Mia Hannah Lea Lena Laura Julia Sarah Lisa Katharina Sophie Johanna Marie "
        "Charlotte Clara Franziska Jana Sabine Petra",
        "Lukas Leon Finn Jonas Paul Felix Maximilian Elias Noah Ben Tim Jan Niklas Tobias "
        "Stefan Thomas Michael Andreas Florian Matthias",
        "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Schäfer Koch "
        "Bauer Richter Klein Wolf Schröder Neumann Schwarz Zimmermann Braun Krüger Hofmann Hartmann",
        [
            ("Bayern", "Europe/Berlin", "de-DE"),
            ("Berlin", "Europe/Berlin", "de-DE"),
            ("Hamburg", "Europe/Berlin", "de-DE"),
            ("Hessen", "Europe/Berlin", "de-DE"),
            ("Nordrhein-Westfalen", "Europe/Berlin", "de-DE"),
            ("Baden-Württemberg", "Europe/Berlin", "de-DE"),
            ("Sachsen", "Europe/Berlin", "de-DE"),
            ("Niedersachsen", "Europe/Berlin", "de-DE"),
        ],
    ),
    "AT": (
        5,
        "Anna Sophia Marie Emma Lena Laura Hannah Valentina Magdalena Katharina Theresa Elisabeth",
        "Lukas Tobias David Jakob Maximilian Florian Simon Alexander Sebastian Matthias Stefan Georg",
        "Gruber Huber Bauer Wagner Müller Pichler Steiner Moser Mayer Hofer Leitner Berger "
        "Fuchs Eder Fischer Schmid Winkler Weber",
        [
            ("Wien", "Europe/Vienna", "de-AT"),
            ("Tirol", "Europe/Vienna", "de-AT"),
            ("Steiermark", "Europe/Vienna", "de-AT"),
            ("Salzburg", "Europe/Vienna", "de-AT"),
            ("Oberösterreich", "Europe/Vienna", "de-AT"),
        ],
    ),
    "CH": (
        4,
        "Mia Emma Lina Elena Sofia Léa Chloé Alice Giulia Laura Nina Sara",
        "Noah Liam Luca Gabriel Leon David Elias Samuel Louis Matteo Nicolas Jonas",
        "Müller Meier Schmid Keller Weber Huber Schneider Meyer Steiner Fischer Gerber Brunner "
        "Baumann Favre Rochat Bianchi Rossi",
        [
            ("Zürich", "Europe/Zurich", "de-CH"),
            ("Bern", "Europe/Zurich", "de-CH"),
            ("Basel-Stadt", "Europe/Zurich", "de-CH"),
            ("Genève", "Europe/Zurich", "fr-CH"),
            ("Vaud", "Europe/Zurich", "fr-CH"),
            ("Ticino", "Europe/Zurich", "it-CH"),
        ],
    ),
    "GB": (
        12,
        "Olivia Amelia Isla Ava Emily Sophie Grace Lily Freya Charlotte Poppy Evie Jessica Ruby "
        "Hannah Chloe",
        "Oliver George Harry Jack Charlie Thomas Jacob Alfie Oscar William James Noah Leo Henry "
        "Callum Rhys",
        "Smith Jones Williams Taylor Brown Davies Evans Wilson Thomas Johnson Roberts Robinson "
        "Thompson Wright Walker White Hughes Edwards Green Hall Wood Harris Clarke Campbell",
        [
            ("England", "Europe/London", "en-GB"),
            ("Scotland", "Europe/London", "en-GB"),
            ("Wales", "Europe/London", "en-GB"),
            ("Northern Ireland", "Europe/London", "en-GB"),
        ],
    ),
    "US": (
        14,
        "Olivia Emma Charlotte Amelia Sophia Isabella Ava Mia Evelyn Harper Abigail Emily "
        "Madison Jessica Ashley Sofia",
        "Liam Noah Oliver James Elijah William Henry Lucas Benjamin Michael Daniel Matthew "
        "Ethan Logan Jackson Mateo",
        "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez "
        "Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Thompson White Harris",
        [
            ("California", "America/Los_Angeles", "en-US"),
            ("Washington", "America/Los_Angeles", "en-US"),
            ("New York", "America/New_York", "en-US"),
            ("Florida", "America/New_York", "en-US"),
            ("Massachusetts", "America/New_York", "en-US"),
            ("Texas", "America/Chicago", "en-US"),
            ("Texas", "America/Chicago", "es-US"),
            ("Illinois", "America/Chicago", "en-US"),
            ("Colorado", "America/Denver", "en-US"),
            ("Arizona", "America/Phoenix", "en-US"),
        ],
    ),
    "FR": (
        9,
        "Louise Ambre Jade Emma Alice Lina Chloé Léa Manon Camille Inès Juliette Zoé Mathilde",
        "Gabriel Léo Raphaël Louis Arthur Jules Adam Lucas Hugo Nathan Théo Antoine Baptiste Paul",
        "Martin Bernard Thomas Petit Robert Richard Durand Dubois Moreau Laurent Simon Michel "
        "Lefèvre Leroy Roux David Bertrand Morel Fournier Girard Bonnet Dupont",
        [
            ("Île-de-France", "Europe/Paris", "fr-FR"),
            ("Auvergne-Rhône-Alpes", "Europe/Paris", "fr-FR"),
            ("Provence-Alpes-Côte d'Azur", "Europe/Paris", "fr-FR"),
            ("Occitanie", "Europe/Paris", "fr-FR"),
            ("Bretagne", "Europe/Paris", "fr-FR"),
            ("Nouvelle-Aquitaine", "Europe/Paris", "fr-FR"),
        ],
    ),
    "ES": (
        7,
        "Lucía Sofía Martina María Julia Paula Valeria Emma Daniela Carla Alba Noa Carmen Laura",
        "Hugo Martín Lucas Mateo Leo Daniel Alejandro Pablo Manuel Álvaro Adrián David Javier Sergio",
        "García Rodríguez González Fernández López Martínez Sánchez Pérez Gómez Martín Jiménez "
        "Ruiz Hernández Díaz Moreno Muñoz Álvarez Romero Navarro Torres",
        [
            ("Madrid", "Europe/Madrid", "es-ES"),
            ("Cataluña", "Europe/Madrid", "ca-ES"),
            ("Cataluña", "Europe/Madrid", "es-ES"),
            ("Andalucía", "Europe/Madrid", "es-ES"),
            ("Comunidad Valenciana", "Europe/Madrid", "es-ES"),
            ("Canarias", "Atlantic/Canary", "es-ES"),
        ],
    ),
    "IT": (
        7,
        "Sofia Aurora Giulia Ginevra Alice Beatrice Emma Giorgia Vittoria Martina Chiara Francesca",
        "Leonardo Francesco Alessandro Lorenzo Mattia Tommaso Gabriele Andrea Riccardo Edoardo "
        "Marco Luca",
        "Rossi Russo Ferrari Esposito Bianchi Romano Colombo Ricci Marino Greco Bruno Gallo Conti "
        "De_Luca Mancini Costa Giordano Rizzo Lombardi Moretti",
        [
            ("Lombardia", "Europe/Rome", "it-IT"),
            ("Lazio", "Europe/Rome", "it-IT"),
            ("Campania", "Europe/Rome", "it-IT"),
            ("Toscana", "Europe/Rome", "it-IT"),
            ("Piemonte", "Europe/Rome", "it-IT"),
            ("Sicilia", "Europe/Rome", "it-IT"),
        ],
    ),
    "NL": (
        5,
        "Emma Julia Mila Tess Sophie Zoë Sara Nora Yara Eva Anna Lotte Fleur Sanne",
        "Noah Daan Sem Lucas Levi Finn Luuk Milan Bram Thijs Jesse Ruben Lars Sven",
        "de_Jong Jansen de_Vries van_den_Berg van_Dijk Bakker Janssen Visser Smit Meijer "
        "de_Boer Mulder de_Groot Bos Vos Peters Hendriks",
        [
            ("Noord-Holland", "Europe/Amsterdam", "nl-NL"),
            ("Zuid-Holland", "Europe/Amsterdam", "nl-NL"),
            ("Utrecht", "Europe/Amsterdam", "nl-NL"),
            ("Noord-Brabant", "Europe/Amsterdam", "nl-NL"),
            ("Gelderland", "Europe/Amsterdam", "nl-NL"),
        ],
    ),
    "SE": (
        3,
        "Alice Maja Vera Astrid Elsa Alma Wilma Ebba Saga Agnes Ella Olivia Linnea Klara",
        "William Noah Hugo Lucas Liam Oscar Elias Adam Nils Alexander Erik Olle Axel Gustav",
        "Andersson Johansson Karlsson Nilsson Eriksson Larsson Olsson Persson Svensson Gustafsson "
        "Pettersson Jonsson Jansson Hansson Lindberg Lindström Bergström",
        [
            ("Stockholm", "Europe/Stockholm", "sv-SE"),
            ("Västra Götaland", "Europe/Stockholm", "sv-SE"),
            ("Skåne", "Europe/Stockholm", "sv-SE"),
            ("Uppsala", "Europe/Stockholm", "sv-SE"),
        ],
    ),
    "PL": (
        5,
        "Zuzanna Julia Zofia Hanna Maja Lena Alicja Maria Oliwia Amelia Anna Katarzyna Agnieszka",
        "Antoni Jan Aleksander Franciszek Nikodem Jakub Szymon Filip Piotr Tomasz Krzysztof "
        "Michał Paweł",
        "Nowak Kowalski Wiśniewski Wójcik Kowalczyk Kamiński Lewandowski Zieliński Szymański "
        "Woźniak Dąbrowski Kozłowski Jankowski Mazur Kwiatkowski Krawczyk",
        [
            ("Mazowieckie", "Europe/Warsaw", "pl-PL"),
            ("Małopolskie", "Europe/Warsaw", "pl-PL"),
            ("Śląskie", "Europe/Warsaw", "pl-PL"),
            ("Wielkopolskie", "Europe/Warsaw", "pl-PL"),
            ("Pomorskie", "Europe/Warsaw", "pl-PL"),
        ],
    ),
    "JP": (
        3,
        "結衣/Yui 陽菜/Hina さくら/Sakura 葵/Aoi 芽依/Mei 凛/Rin 結菜/Yuna 澪/Mio 花/Hana "
        "朱莉/Akari 美咲/Misaki 優子/Yuko",
        "陽翔/Haruto 蒼/Sou 蓮/Ren 悠斗/Yuto 湊/Minato 陸/Riku 匠/Takumi 大輝/Daiki 海斗/Kaito "
        "浩/Hiroshi 健太/Kenta 翔太/Shota",
        "佐藤/Sato 鈴木/Suzuki 高橋/Takahashi 田中/Tanaka 渡辺/Watanabe 伊藤/Ito 山本/Yamamoto "
        "中村/Nakamura 小林/Kobayashi 加藤/Kato 吉田/Yoshida 山田/Yamada 佐々木/Sasaki 松本/Matsumoto",
        [
            ("Tokyo", "Asia/Tokyo", "ja-JP"),
            ("Osaka", "Asia/Tokyo", "ja-JP"),
            ("Kanagawa", "Asia/Tokyo", "ja-JP"),
            ("Aichi", "Asia/Tokyo", "ja-JP"),
            ("Hokkaido", "Asia/Tokyo", "ja-JP"),
            ("Fukuoka", "Asia/Tokyo", "ja-JP"),
        ],
    ),
    "BR": (
        4,
        "Helena Alice Laura Maria Valentina Heloísa Sophia Manuela Júlia Lívia Beatriz Ana Gabriela",
        "Miguel Arthur Gael Heitor Theo Davi Gabriel Bernardo Samuel Pedro Lucas Rafael João",
        "Silva Santos Oliveira Souza Rodrigues Ferreira Alves Pereira Lima Gomes Costa Ribeiro "
        "Martins Carvalho Almeida Lopes Soares Fernandes",
        [
            ("São Paulo", "America/Sao_Paulo", "pt-BR"),
            ("Rio de Janeiro", "America/Sao_Paulo", "pt-BR"),
            ("Minas Gerais", "America/Sao_Paulo", "pt-BR"),
            ("Bahia", "America/Bahia", "pt-BR"),
            ("Pernambuco", "America/Recife", "pt-BR"),
            ("Amazonas", "America/Manaus", "pt-BR"),
        ],
    ),
}

OCCUPATIONS = (
    "Software Engineer",
    "Teacher",
    "Nurse",
    "Student",
    "Graphic Designer",
    "Accountant",
    "Sales Manager",
    "Architect",
    "Chef",
    "Physician",
    "Marketing Specialist",
    "Electrician",
    "Retired",
    "Consultant",
    "Photographer",
    "Pharmacist",
    "Lawyer",
    "Researcher",
    "Project Manager",
    "Entrepreneur",
    "Shop Owner",
    "Data Analyst",
)

# tag: share of shoppers carrying it
USER_TAGS = {
    "newsletter": 0.45,
    "loyalty": 0.22,
    "vip": 0.06,
    "wholesale": 0.03,
    "early-adopter": 0.05,
    "gift-buyer": 0.10,
    "bargain-hunter": 0.15,
}
CHANNELS = ("email", "email", "push", "sms", "inapp")
ACQUISITION = ("organic", "organic", "paid_search", "social", "referral", "email", "affiliate")

# Top level -> second level -> leaf -> (product noun, lowest price, highest price)
CATEGORIES: dict[str, dict[str, dict[str, tuple[str, int, int]]]] = {
    "Apparel": {
        "Shoes": {
            "Running": ("Running Shoe", 59, 179),
            "Sneakers": ("Sneaker", 49, 149),
            "Boots": ("Boot", 79, 249),
        },
        "Tops": {
            "T-Shirts": ("T-Shirt", 12, 39),
            "Hoodies": ("Hoodie", 35, 89),
            "Shirts": ("Shirt", 29, 99),
        },
        "Bottoms": {
            "Jeans": ("Jeans", 39, 129),
            "Shorts": ("Shorts", 19, 59),
            "Leggings": ("Leggings", 24, 79),
        },
    },
    "Electronics": {
        "Audio": {
            "Headphones": ("Headphones", 29, 399),
            "Speakers": ("Bluetooth Speaker", 29, 299),
            "Earbuds": ("Wireless Earbuds", 25, 249),
        },
        "Computers": {
            "Laptops": ("Laptop", 499, 2199),
            "Monitors": ("Monitor", 129, 899),
            "Keyboards": ("Keyboard", 25, 179),
        },
        "Phones": {
            "Smartphones": ("Smartphone", 199, 1299),
            "Cases": ("Phone Case", 9, 49),
            "Chargers": ("Fast Charger", 12, 69),
        },
    },
    "Home & Kitchen": {
        "Cookware": {
            "Pans": ("Frying Pan", 19, 149),
            "Pots": ("Stock Pot", 25, 179),
            "Knives": ("Chef's Knife", 19, 199),
        },
        "Furniture": {
            "Chairs": ("Chair", 49, 499),
            "Desks": ("Desk", 99, 899),
            "Shelves": ("Shelf", 29, 249),
        },
        "Decor": {
            "Lamps": ("Table Lamp", 19, 189),
            "Rugs": ("Rug", 39, 399),
            "Candles": ("Scented Candle", 7, 39),
        },
    },
    "Beauty": {
        "Skincare": {
            "Moisturisers": ("Moisturiser", 9, 79),
            "Cleansers": ("Cleanser", 6, 39),
            "Sun Care": ("Sunscreen SPF 50", 8, 35),
        },
        "Fragrance": {
            "Perfume": ("Eau de Parfum", 29, 149),
            "Cologne": ("Eau de Toilette", 25, 119),
        },
    },
    "Sports & Outdoors": {
        "Camping": {
            "Tents": ("Tent", 79, 599),
            "Sleeping Bags": ("Sleeping Bag", 39, 249),
            "Backpacks": ("Hiking Backpack", 39, 229),
        },
        "Fitness": {
            "Yoga": ("Yoga Mat", 15, 99),
            "Weights": ("Dumbbell Set", 29, 249),
        },
        "Cycling": {
            "Helmets": ("Bike Helmet", 29, 199),
            "Lights": ("Bike Light Set", 12, 89),
        },
    },
}

BRANDS = {
    "Apparel": ("Stridewell", "Northwind", "Kestrel", "Lumen & Loom", "Vantage", "Mellow Goat"),
    "Electronics": ("Voltaic", "Auralis", "Quanta", "Pixelforge", "Nimbus Audio"),
    "Home & Kitchen": ("Hearth & Co", "Copperleaf", "Oakline", "Casa Nova", "Lindgren Home"),
    "Beauty": ("Dewdrop", "Maison Elise", "Purecraft", "Solène"),
    "Sports & Outdoors": ("Summit Ridge", "Trailhead", "Pace Athletics", "Velocita"),
}
MATERIALS = {
    "Apparel": ("organic cotton", "recycled polyester", "merino wool", "linen", "recycled nylon"),
    "Electronics": ("aluminium", "recycled plastic", "glass", "silicone"),
    "Home & Kitchen": ("stainless steel", "cast iron", "oak", "ceramic", "walnut", "wool"),
    "Beauty": ("vegan formula", "fragrance-free formula", "natural extracts"),
    "Sports & Outdoors": ("ripstop nylon", "recycled polyester", "aluminium", "natural rubber"),
}
PITCH = {
    "Apparel": "Comfortable from the first wear and made to last.",
    "Electronics": "Two-year warranty and free firmware updates.",
    "Home & Kitchen": "Designed for everyday use and easy to clean.",
    "Beauty": "Dermatologically tested and cruelty-free.",
    "Sports & Outdoors": "Tested in the field by people who go outside a lot.",
}
MODELS = (
    "Aero Nova Terra Pulse Drift Atlas Echo Vista Orbit Zephyr Summit Flux Ember Halo Arc "
    "Breeze Core Prime Edge Luma Tide Ridge"
).split()
COLORS = ("Black", "White", "Navy", "Grey", "Red", "Olive", "Beige", "Blue", "Green", "Sand")
PRODUCT_TAGS = {
    "new": 0.15,
    "bestseller": 0.12,
    "sale": 0.18,
    "eco": 0.12,
    "limited": 0.05,
    "gift-idea": 0.10,
    "exclusive": 0.04,
}
