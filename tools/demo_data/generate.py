"""Generate tunekit's bundled demo data sets.

Run ``python3 tools/demo_data/generate.py``; it writes, into ``tunekit/data/demo/``:

* ``c4_demo.jsonl``       -- plain-text documents for pre-training (``{"text": ...}`` per line)
* ``alpaca_en_demo.json`` -- instruction / input / output rows for supervised fine-tuning
* ``identity.json``       -- "who are you" rows whose answers use ``{{name}}`` / ``{{author}}``
* ``dpo_en_demo.json``    -- sharegpt preference pairs (chosen / rejected)
* ``kto_en_demo.json``    -- sharegpt rows with a boolean desirability ``label``
* ``math_demo.json``      -- GSM8K-shaped system / question / answer rows (answers end ``#### N``) for GRPO
* ``math_tables_demo.json`` -- the easy slice of that task: every times-table product and quotient up to 12 x 12
* ``dataset_info.json``   -- a LLaMA-Factory-compatible registry of the files above

All of the text -- templates, sentence fragments, facts and answers -- was written for
tunekit and is the project's own; nothing is copied from another data set. The output is
deterministic: every random choice comes from ``random.Random(SEED)``, and the answers to
computed tasks (arithmetic, conversions, sorting, counting ...) are computed here, so they
are correct by construction. Only the standard library is used.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

SEED = 20240607
HERE = Path(__file__).resolve().parents[2] / "tunekit" / "data" / "demo"  # where the data sets live

N_C4 = 360
N_ALPACA = 400
N_DPO = 360
N_DPO_MULTI = 48
N_KTO = 360  # must be even: half true, half false
N_MATH = 360  # half plain arithmetic, half word problems
MATH_SEED = SEED + 6  # math_demo's own generator: adding it left the other files unchanged
TABLES_SEED = SEED + 7  # math_tables_demo's order


# ---------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------

def fmt_num(x: float) -> str:
    """Format a number without a trailing .0, at most two decimals."""
    if abs(x - round(x)) < 1e-9:
        return str(int(round(x)))
    return f"{x:.2f}".rstrip("0").rstrip(".")


def join_list(items) -> str:
    items = [str(i) for i in items]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def a_an(word: str) -> str:
    return ("an " if word[0].lower() in "aeiou" else "a ") + word


# ---------------------------------------------------------------------------
# 1. pre-training corpus
# ---------------------------------------------------------------------------

TOWNS = ["Millbrook", "Ashford Vale", "Kestrel Bay", "Larchmont Falls", "Pine Hollow",
         "Redwater", "Stonebridge", "Willow Creek", "Harrowgate", "Elmsworth", "Brackenfield",
         "Copper Ridge", "Fernhill", "Oakhaven", "Saltmarsh", "Thistledown"]
FIRST = ["Maria", "Tom", "Aisha", "Daniel", "Priya", "Lucas", "Hannah", "Omar", "Grace",
         "Mateo", "Chloe", "Samuel", "Yuki", "Elena", "Noah", "Fatima", "Leo", "Ingrid",
         "Kofi", "Rosa", "Ben", "Mei", "Arjun", "Clara"]
LAST = ["Alvarez", "Brennan", "Choi", "Dawson", "Eriksen", "Fischer", "Gupta", "Hart",
        "Ibrahim", "Jansen", "Kowalski", "Lindqvist", "Moreau", "Nakamura", "Okafor",
        "Petrov", "Quinn", "Rossi", "Silva", "Turner"]

C4_TOPICS = {
    "cooking": {
        "title": ["Notes on {dish}", "Weeknight {dish}", "Kitchen diary: {dish}"],
        "fill": {
            "dish": ["lentil soup", "roast chicken", "vegetable curry", "banana bread",
                     "tomato pasta", "mushroom risotto", "potato gratin", "bean chili",
                     "apple crumble", "fried rice", "pumpkin soup", "fish tacos"],
            "veg": ["onions", "carrots", "garlic", "peppers", "spinach", "leeks", "celery",
                    "courgettes", "sweet potatoes"],
            "herb": ["thyme", "rosemary", "basil", "parsley", "coriander", "oregano", "dill"],
            "mins": ["ten", "fifteen", "twenty", "twenty-five", "thirty", "forty"],
            "temp": ["180", "190", "200", "160"],
        },
        "open": [
            "There are few things as comforting on a cold evening as a pot of {dish}.",
            "My grandmother made {dish} every Sunday, and I finally wrote down how she did it.",
            "If you have never made {dish} at home, this is a good week to start.",
            "This is the version of {dish} I cook when I have very little time and very little patience.",
            "A reader asked how I keep my {dish} from turning out bland, so here are my notes.",
        ],
        "body": [
            "Start by chopping the {veg} into pieces of roughly the same size so they cook evenly.",
            "Warm a splash of oil in a heavy pan and let the {veg} soften slowly over a low heat.",
            "Do not rush this step; the sweetness comes from patience rather than a high flame.",
            "A handful of fresh {herb} added at the end lifts the whole dish.",
            "If you only have dried {herb}, use about a third as much and add it earlier.",
            "Taste as you go, and add salt a little at a time rather than all at once.",
            "The oven should be preheated to {temp} degrees Celsius before anything goes in.",
            "After about {mins} minutes, check the pan and give everything a gentle stir.",
            "Leftovers keep well in the fridge for two or three days in a covered container.",
            "A squeeze of lemon just before serving brightens flavours that have gone a little flat.",
            "Cheap ingredients, treated with care, often beat expensive ones treated carelessly.",
            "Some cooks like to toast their spices in a dry pan first, which deepens their aroma.",
            "Resting the finished dish for a few minutes lets the flavours settle.",
            "Serve it with crusty bread or a simple green salad.",
            "Children tend to enjoy it too, especially if you keep the spices mild.",
            "Doubling the recipe is easy, and the second batch freezes well.",
        ],
        "close": [
            "Give it a try this week and adjust it until it tastes like yours.",
            "Once you have made it twice, you will not need the recipe any more.",
            "Happy cooking, and let me know how your version turns out.",
        ],
    },
    "gardening": {
        "title": ["Growing {plant}", "Garden notes: {plant}"],
        "fill": {
            "plant": ["tomatoes", "runner beans", "lettuce", "sunflowers", "strawberries",
                      "sweet peas", "courgettes", "lavender", "radishes", "dahlias"],
            "season": ["early spring", "late spring", "midsummer", "early autumn"],
            "pest": ["slugs", "aphids", "snails", "caterpillars"],
            "weeks": ["two", "three", "four", "six"],
        },
        "open": [
            "Growing {plant} is one of the easiest ways to get started in the garden.",
            "Every year I promise myself I will plant fewer {plant}, and every year I fail.",
            "A small balcony is enough space to grow a surprising crop of {plant}.",
            "Here is what I have learned after several seasons of growing {plant}.",
        ],
        "body": [
            "Most gardeners sow them in {season}, once the soil has begun to warm.",
            "Choose a spot that gets at least six hours of direct sunlight a day.",
            "Water deeply once or twice a week rather than giving a little every day.",
            "Deep watering encourages roots to grow down, which helps plants survive dry spells.",
            "A layer of mulch keeps moisture in the soil and weeds out of sight.",
            "Watch out for {pest}, which can strip young leaves overnight.",
            "A quick evening check with a torch is often the best way to catch {pest} at work.",
            "Seedlings usually appear within {weeks} weeks if the soil stays moist.",
            "Thin the seedlings once they have a few true leaves so each has room to grow.",
            "Compost made from kitchen scraps and fallen leaves will feed the soil for free.",
            "Containers dry out quickly in warm weather, so check them daily.",
            "Label everything when you plant it, because you will not remember later.",
            "Harvesting regularly often encourages the plant to keep producing.",
            "Keep a simple notebook of what you planted and when; it makes next year easier.",
            "Bees and other pollinators will visit more often if you grow a few flowers nearby.",
        ],
        "close": [
            "There is nothing quite like eating something you grew yourself.",
            "Start small, learn from the failures, and enjoy the successes.",
            "By the end of the season you will wonder why you waited so long.",
        ],
    },
    "local_news": {
        "title": ["News from {town}", "{town} community update"],
        "fill": {
            "town": TOWNS,
            "place": ["the public library", "the community centre", "the old railway station",
                      "the riverside park", "the primary school", "the town hall",
                      "the swimming pool", "the market square"],
            "event": ["a summer fair", "a charity fun run", "a book swap", "a farmers market",
                      "an open-air concert", "a litter-picking day", "a classic car show"],
            "amount": ["4,000", "12,500", "30,000", "75,000", "8,200"],
            "day": ["Saturday", "Sunday", "Friday evening", "next weekend"],
        },
        "open": [
            "Residents of {town} are invited to {event} at {place} this {day}.",
            "The council in {town} has approved plans to refurbish {place}.",
            "Volunteers in {town} have raised {amount} pounds to improve {place}.",
            "{place_cap} in {town} will reopen next month after a long period of repairs.",
        ],
        "body": [
            "Organisers say the event is free and open to people of all ages.",
            "A spokesperson for the council said the work should be finished before winter.",
            "Local businesses have donated food, prizes and equipment.",
            "The project was first suggested at a public meeting last year.",
            "Several residents said they were pleased to see the building used again.",
            "Parking will be limited, so visitors are encouraged to walk or cycle.",
            "Extra bus services will run throughout the day.",
            "Anyone who would like to volunteer can sign up at {place}.",
            "The last similar event drew a larger crowd than expected.",
            "Young people from the area helped design the new layout.",
            "Money left over will go towards new benches and planting.",
            "A small exhibition of old photographs of {town} will be on display.",
            "Organisers thanked everyone who gave up their time to help.",
        ],
        "close": [
            "More details are available from the council website and the notice board at {place}.",
            "Organisers hope to make it a yearly tradition.",
            "Questions can be sent to the organising committee by email.",
        ],
    },
    "travel": {
        "title": ["Travel notes", "A slow trip to {dest}"],
        "fill": {
            "dest": ["a small fishing village", "a lakeside town", "a hilltop city",
                     "a quiet island", "a mountain valley", "an old market town"],
            "days": ["three", "four", "five", "seven", "ten"],
            "transport": ["the slow train", "a rented bicycle", "the local bus", "a small ferry"],
            "food": ["grilled fish", "fresh bread", "local cheese", "a thick vegetable stew",
                     "sweet pastries", "spiced rice"],
        },
        "open": [
            "We spent {days} days in {dest}, and I would go back tomorrow.",
            "Travelling without a fixed plan taught me more than any guidebook.",
            "If you want a holiday that feels slow, consider {dest}.",
            "I packed too much for this trip, which is a lesson I keep learning.",
        ],
        "body": [
            "Getting there by {transport} was half the fun.",
            "The best meal of the trip was {food} from a stall near the harbour.",
            "Mornings were quiet, with only a few locals walking their dogs.",
            "We found that the smaller cafes were both cheaper and friendlier.",
            "Bring comfortable shoes, because the streets are steep and uneven.",
            "Learning a few words of the local language made people smile.",
            "The weather changed quickly, so a light rain jacket was essential.",
            "Booking a room a few weeks ahead saved us a good deal of money.",
            "Most shops closed in the early afternoon and reopened in the evening.",
            "A short walk out of town led to a viewpoint with no one else around.",
            "Carrying a refillable water bottle saved money and plastic.",
            "The evening market was lively, noisy and full of good smells.",
            "We kept one day completely free, and it turned out to be the best day.",
        ],
        "close": [
            "It is the kind of place that rewards travellers who slow down.",
            "I left with tired legs, a full camera and a wish to return.",
            "Next time I will stay longer and pack lighter.",
        ],
    },
    "science_water": {
        "fill": {
            "lead": ["Put simply,", "In everyday terms,", "Here is the short version:",
                     "It helps to picture it this way:"],
        },
        "open": [
            "Why does ice float on water? The answer is more interesting than it first appears.",
            "Water behaves in some surprising ways, and a few of them matter a great deal for life on Earth.",
            "Where does rain actually come from? It is all part of the water cycle.",
            "Why does pasta take longer to cook high up in the mountains?",
        ],
        "body": [
            "{lead} water expands when it freezes, so ice is less dense than liquid water.",
            "Because ice floats, lakes freeze from the top down, and fish can survive in the water beneath.",
            "At sea level, pure water boils at 100 degrees Celsius.",
            "On a high mountain the air pressure is lower, so water boils at a lower temperature.",
            "That cooler boiling water cooks food more slowly.",
            "The Sun warms oceans, lakes and rivers, and some of the water evaporates into the air as vapour.",
            "As the vapour rises, it cools and condenses into tiny droplets, which form clouds.",
            "When droplets join together and grow heavy enough, they fall as rain or snow.",
            "The water then flows back towards the sea, and the cycle begins again.",
            "About seventy percent of the Earth's surface is covered by water.",
            "Scientists test ideas like these by making predictions and checking them with careful measurements.",
        ],
        "close": [
            "Small everyday puzzles like this are a great way into science.",
            "Next time you fill a glass of water, you might see it a little differently.",
            "The more closely you look, the more questions appear.",
        ],
    },
    "science_light": {
        "fill": {
            "lead": ["Put simply,", "In everyday terms,", "Here is the short version:"],
        },
        "open": [
            "Many people wonder why the sky looks blue on a clear day.",
            "Why do we see lightning before we hear the thunder?",
            "Light and sound both travel as waves, but they behave very differently.",
            "Sound needs something to travel through, which is why space is silent.",
        ],
        "body": [
            "Sunlight contains all the colours of the rainbow mixed together.",
            "{lead} air molecules scatter blue light more strongly than red light, so blue light reaches our eyes from every part of the sky.",
            "A rainbow appears when sunlight is bent and reflected inside raindrops, which spreads it into its colours.",
            "Light travels much faster than sound, which is why we see lightning before we hear thunder.",
            "Counting the seconds between the flash and the rumble gives a rough idea of how far away a storm is.",
            "Sound is a vibration that passes from particle to particle through air, water or solids.",
            "In the near vacuum of space there are almost no particles, so sound cannot travel there.",
            "Light from the Sun takes about eight minutes to reach the Earth.",
            "The Moon does not make its own light; it reflects light from the Sun.",
            "Scientists test ideas like these by making predictions and checking them with careful measurements.",
        ],
        "close": [
            "Next time you look up at the sky, you will know a little more about what you are seeing.",
            "Simple questions often lead to beautiful answers.",
            "The more closely you look, the more questions appear.",
        ],
    },
    "science_life": {
        "fill": {
            "lead": ["Put simply,", "In everyday terms,", "Here is the short version:"],
        },
        "open": [
            "Plants make their own food, and the process is worth understanding.",
            "Why do leaves change colour in autumn?",
            "Living things depend on each other in ways that are easy to overlook.",
        ],
        "body": [
            "{lead} in photosynthesis, plants use light energy to turn carbon dioxide and water into sugar and oxygen.",
            "The green colour of leaves comes from chlorophyll, a pigment that captures light.",
            "Roots take in water and minerals from the soil and carry them up to the leaves.",
            "In autumn many trees stop making chlorophyll, and yellow and orange pigments that were hidden become visible.",
            "Animals, including people, breathe in oxygen and breathe out carbon dioxide.",
            "Plants, in turn, take in carbon dioxide, so the two processes balance each other.",
            "Bees and other insects carry pollen from flower to flower, which helps plants make seeds.",
            "An adult human skeleton has 206 bones.",
            "Getting enough sleep helps the body recover and helps the brain store memories.",
            "Scientists test ideas like these by making predictions and checking them with careful measurements.",
        ],
        "close": [
            "It is a good reminder of how connected living things are.",
            "Next time you walk past a tree, remember how busy it is.",
            "There is always more to learn about the living world.",
        ],
    },
    "history": {
        "fill": {
            "town": TOWNS,
            "century": ["seventeenth", "eighteenth", "nineteenth"],
            "trade": ["wool", "salt", "timber", "pottery", "rope", "cider"],
            "building": ["watermill", "stone bridge", "market hall", "lighthouse", "corn exchange"],
            "person": [f"{f} {l}" for f in FIRST[:8] for l in LAST[:5]],
        },
        "open": [
            "In the {century} century, the little town of {town} was known for its {trade}.",
            "Few visitors to {town} realise that its {building} is older than most of the streets.",
            "Local records tell the story of {person}, who ran the {building} in {town} for forty years.",
            "The history of {town} is, in many ways, the history of its {trade} trade.",
        ],
        "body": [
            "Goods travelled by cart and barge to larger markets along the coast.",
            "Parish records show that the population doubled in just two generations.",
            "The {building} was rebuilt after a fire, using stone from a nearby quarry.",
            "Families often worked together, with children helping from an early age.",
            "A harsh winter once froze the river, halting trade for several weeks.",
            "The arrival of the railway changed the rhythm of daily life almost overnight.",
            "Old letters describe busy market days, with traders arriving before dawn.",
            "When demand for {trade} fell, many workers moved to the growing cities.",
            "The town's first school was founded in a single room above a shop.",
            "Local historians have collected maps, diaries and photographs in the museum.",
            "Some of the original cobbled lanes can still be seen near the church.",
            "A plaque now marks the spot where the old {building} once stood.",
        ],
        "close": [
            "Walking through {town} today, you can still see traces of that past.",
            "It is a reminder that ordinary people shaped history as much as famous ones.",
            "The museum is open at weekends for anyone curious to learn more.",
        ],
    },
    "review": {
        "title": ["Review: {product}", "Honest review of a {product}"],
        "fill": {
            "product": ["electric kettle", "pair of hiking boots", "desk lamp", "backpack",
                        "coffee grinder", "wireless keyboard", "rice cooker", "umbrella",
                        "water bottle", "office chair", "blender", "pair of headphones"],
            "weeks": ["two", "three", "six", "eight"],
            "stars": ["three", "four", "four", "five"],
        },
        "open": [
            "I have been using this {product} for {weeks} weeks, so here is an honest review.",
            "After my old one broke, I bought this {product} and I have mixed feelings.",
            "Short version: this {product} does its job, and does it quietly.",
            "I read a lot of reviews before buying this {product}, so I am writing one back.",
        ],
        "body": [
            "The build quality feels solid, and nothing rattles or creaks.",
            "Setup took less than five minutes, and the instructions were clear.",
            "It is a little heavier than I expected, which may bother some people.",
            "The price is fair for what you get, though it is not the cheapest option.",
            "After {weeks} weeks of daily use, it still looks almost new.",
            "My only real complaint is that the packaging used far too much plastic.",
            "Customer service answered my question within a day.",
            "The colour is slightly different from the photos online.",
            "It is easy to clean, which matters more than I thought it would.",
            "A friend bought the same model and is equally happy with it.",
            "I would like a longer warranty, but that is a minor point.",
            "Compared with my previous one, it is a clear improvement.",
        ],
        "close": [
            "Overall I would give it {stars} stars out of five.",
            "I would buy it again, and I have recommended it to my family.",
            "If you can find it on sale, it is an easy choice.",
        ],
    },
    "sports": {
        "title": ["Match report", "Weekend football roundup"],
        "fill": {
            "home": ["the Riverside Otters", "Harbour City", "the Northfield Hawks",
                     "Eastgate Rovers", "the Valley Lions", "Millbrook Athletic"],
            "away": ["the Southport Foxes", "Westbury United", "the Hillcrest Bears",
                     "Lakeside Wanderers", "the Coastal Gulls", "Kingsmoor Town"],
            "player": [f"{f} {l}" for f in FIRST[8:16] for l in LAST[5:11]],
            "minute": ["12th", "27th", "38th", "55th", "63rd", "71st", "84th", "90th"],
        },
        "derive": "score",
        "open": [
            "{winner_cap} beat {loser} {ws}-{ls} in an entertaining match on Saturday.",
            "It was a tense afternoon, but {winner} held on to win {ws}-{ls} against {loser}.",
            "{winner_cap} claimed a {ws}-{ls} victory over {loser} in front of a lively home crowd.",
        ],
        "body": [
            "{player} opened the scoring in the {minute} minute with a low shot.",
            "The first half was scrappy, with few clear chances for either side.",
            "Rain made the pitch slippery, and several passes went astray.",
            "The coach made two changes at half-time, and the team looked sharper.",
            "{loser_cap} pressed hard in the final minutes but could not find a way through.",
            "The goalkeeper made a fine save to keep the score close.",
            "Supporters sang throughout, even when the weather turned cold.",
            "It was the team's third win in a row.",
            "A late injury scare turned out to be nothing serious.",
            "Both managers praised the effort of their players after the match.",
            "The result lifts {winner} up the table ahead of next week's fixtures.",
        ],
        "close": [
            "The two sides meet again later in the season.",
            "Next up is a home game on Wednesday evening.",
            "Tickets for the next match are on sale now.",
        ],
    },
    "howto": {
        "title": ["How to {task}", "Quick guide: how to {task}"],
        "fill": {
            "task": ["fix a dripping tap", "hang a picture straight", "unblock a sink",
                     "sharpen a kitchen knife", "patch a small hole in a wall",
                     "clean a stained mug", "bleed a radiator", "repot a houseplant"],
            "tool": ["an old towel", "a spirit level", "a screwdriver", "a bucket",
                     "a pair of gloves", "a soft cloth"],
        },
        "open": [
            "Here is a simple guide to how you can {task} without calling anyone.",
            "Learning to {task} takes ten minutes and saves a lot of frustration.",
            "You do not need special skills to {task}; you just need a little patience.",
        ],
        "listy": True,
        "body": [
            "Gather what you need before you start, including {tool}.",
            "Clear the area so you have room to work safely.",
            "Read through all the steps once before you begin.",
            "Work slowly; most mistakes come from hurrying.",
            "If something feels stuck, stop and check rather than forcing it.",
            "Keep small parts in a cup so they do not roll away.",
            "Take a photo before you take anything apart, so you can put it back the same way.",
            "Test the result carefully once you are done.",
            "Tidy up and put your tools away so they are ready next time.",
            "If the problem comes back, it may be time to ask a professional.",
        ],
        "close": [
            "That is all there is to it.",
            "With a bit of practice, it becomes second nature.",
            "Well done: one more small job you can now do yourself.",
        ],
    },
    "weather": {
        "title": ["Weather for {town}", "{town} forecast"],
        "fill": {
            "town": TOWNS,
            "day": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "the weekend"],
            "wind": ["a light breeze", "gusty winds", "calm conditions", "a fresh westerly wind"],
        },
        "derive": "temps",
        "open": [
            "Here is the weather outlook for {town} and the surrounding area.",
            "After a grey start to the week, {town} can expect brighter spells.",
            "Forecasters say {day} will be the warmest day of the week in {town}.",
        ],
        "body": [
            "Daytime highs will reach around {hi} degrees Celsius.",
            "Overnight the temperature will drop to about {lo} degrees.",
            "Expect {wind} through most of the afternoon.",
            "Showers are likely in the morning, clearing by lunchtime.",
            "There is a small chance of thunder later in the day.",
            "Skies should stay mostly clear, with a few high clouds.",
            "Mist may form in low-lying areas early in the morning.",
            "Drivers are advised to take care on wet roads.",
            "It will feel cooler near the coast.",
            "Gardeners will welcome the rain after a dry spell.",
            "A light jacket should be enough for most of the day.",
        ],
        "close": [
            "The next full forecast will be issued tomorrow morning.",
            "Enjoy the sunshine while it lasts.",
            "Keep an umbrella handy, just in case.",
        ],
    },
    "animals": {
        "title": ["Wildlife notes: the {animal}", "Garden wildlife"],
        "fill": {
            "animal": ["hedgehog", "red fox", "barn owl", "otter", "badger", "heron",
                       "squirrel", "robin", "frog", "deer"],
            "time": ["at dusk", "early in the morning", "late at night", "just after rain"],
        },
        "open": [
            "If you are lucky, you might spot {a_animal} {time}.",
            "The {animal} is one of the most fascinating animals you can find close to home.",
            "{a_animal_cap} visited our garden last week, and it made me curious.",
        ],
        "body": [
            "Many wild animals are most active {time}, when it is quieter.",
            "Leaving a corner of the garden a little wild gives animals somewhere to shelter.",
            "A shallow dish of fresh water helps wildlife during hot weather.",
            "It is best to watch from a distance and not disturb the animal.",
            "Young animals that seem alone are often being watched by a parent nearby.",
            "Good binoculars make watching wildlife much more rewarding.",
            "Local wildlife groups often run walks for beginners.",
            "Keeping a simple diary of sightings can reveal patterns over the year.",
            "Pets should be kept indoors at night if wild visitors are common.",
            "Hedges and trees act like corridors that let animals move safely.",
            "Pesticides can harm the insects that many animals depend on for food.",
        ],
        "close": [
            "A little patience is usually rewarded.",
            "Sharing your garden with wildlife is a quiet kind of joy.",
            "Keep watching; nature is always up to something.",
        ],
    },
    "programming": {
        "title": ["Programming tips", "Notes on writing better {lang}"],
        "fill": {
            "lang": ["Python", "JavaScript", "Go", "Rust", "Java"],
            "thing": ["function", "module", "test", "variable name", "commit message"],
        },
        "open": [
            "Here are a few habits that made me a better {lang} programmer.",
            "Good code is mostly about being kind to the next person who reads it.",
            "I review a lot of {lang} code, and the same small issues come up again and again.",
        ],
        "body": [
            "Give every {thing} a clear, specific name; it saves time later.",
            "Keep functions short enough that you can read each one without scrolling.",
            "Write a test before fixing a bug, so you know when it is really fixed.",
            "Commit small changes often, with messages that explain why, not just what.",
            "Use version control even for tiny personal projects.",
            "Read error messages slowly; they usually tell you exactly what went wrong.",
            "When stuck, explain the problem out loud, even to a rubber duck.",
            "Avoid clever one-liners that nobody, including you, can understand next month.",
            "Automate repetitive checks with a formatter and a linter.",
            "Delete dead code instead of commenting it out; version control remembers it.",
            "Measure before optimising; the slow part is rarely where you expect.",
            "Handle errors close to where you can do something useful about them.",
            "Documentation does not need to be long, but it does need to be accurate.",
        ],
        "close": [
            "None of this is new, but all of it is worth repeating.",
            "Pick one habit this week and practise it until it sticks.",
            "Happy coding.",
        ],
    },
    "music": {
        "title": ["Learning the {instrument}", "Practice notes"],
        "fill": {
            "instrument": ["guitar", "piano", "violin", "ukulele", "drums", "flute"],
            "mins": ["ten", "fifteen", "twenty", "thirty"],
            "genre": ["folk", "jazz", "blues", "classical", "pop"],
        },
        "open": [
            "I picked up the {instrument} as an adult, and I have a few tips for beginners.",
            "Learning {genre} on the {instrument} has been the highlight of my year.",
            "Many people think they are too old to learn an instrument; they are usually wrong.",
        ],
        "body": [
            "Practise for {mins} minutes every day rather than for hours once a week.",
            "Short, regular sessions build muscle memory far more reliably.",
            "Use a metronome, and start slower than feels necessary.",
            "Record yourself now and then; you will hear things you miss while playing.",
            "Learn songs you actually love, because motivation matters.",
            "A good teacher can spot bad habits before they set in.",
            "Playing with other people is the fastest way to improve your timing.",
            "It is normal to feel stuck for a few weeks before a sudden leap forward.",
            "Keep your {instrument} out of its case so it is easy to pick up.",
            "Listening closely to {genre} records trains your ear without any effort.",
            "Warm up your hands gently before long sessions.",
        ],
        "close": [
            "Most of all, remember that it is supposed to be fun.",
            "The first song you play all the way through is a moment to remember.",
            "Keep going; your future self will thank you.",
        ],
    },
    "money": {
        "title": ["Saving for {goal}", "Simple budgeting"],
        "fill": {
            "goal": ["a holiday", "a new bicycle", "an emergency fund", "a course",
                     "a deposit on a flat", "a new laptop"],
            "pct": ["five", "ten", "fifteen", "twenty"],
        },
        "open": [
            "Saving for {goal} feels less daunting once you break it into small steps.",
            "Budgeting is not about saying no to everything; it is about choosing.",
            "A friend asked how I saved for {goal}, so here is the simple plan I used.",
        ],
        "body": [
            "Write down everything you spend for one month, without judging it.",
            "Most people are surprised by how much the small purchases add up.",
            "Try setting aside {pct} percent of your income as soon as you are paid.",
            "Keep savings in a separate account so they are not spent by accident.",
            "Cancel subscriptions you have not used in the last month.",
            "Cooking at home a few more nights a week makes a real difference.",
            "Give yourself a small allowance for treats, so the plan feels fair.",
            "Review your budget once a month and adjust it honestly.",
            "An emergency fund stops a surprise bill from becoming a crisis.",
            "Compare prices before large purchases, and wait a day before buying.",
        ],
        "close": [
            "Progress may feel slow at first, but it adds up.",
            "The best budget is one you can actually stick to.",
            "Start this month, even if you start small.",
        ],
    },
}


def _c4_fills(rng: random.Random, topic: dict) -> dict:
    fills = {k: rng.choice(v) for k, v in topic["fill"].items()}
    if "place" in fills:
        fills["place_cap"] = fills["place"][0].upper() + fills["place"][1:]
    if topic.get("derive") == "score":
        ws = rng.randint(1, 5)
        ls = rng.randint(0, ws - 1)
        if rng.random() < 0.5:
            winner, loser = fills["home"], fills["away"]
        else:
            winner, loser = fills["away"], fills["home"]
        fills.update(ws=ws, ls=ls, winner=winner, winner_cap=winner[0].upper() + winner[1:], loser=loser,
                     loser_cap=loser[0].upper() + loser[1:])
    if "animal" in fills:
        fills["a_animal"] = a_an(fills["animal"])
        fills["a_animal_cap"] = fills["a_animal"].capitalize()
    if topic.get("derive") == "temps":
        hi = rng.randint(8, 29)
        fills.update(hi=hi, lo=hi - rng.randint(5, 11))
    return fills


def make_c4_doc(rng: random.Random, name: str, topic: dict) -> str:
    fills = _c4_fills(rng, topic)
    # keep the hand-written order of the body sentences, which reads more naturally
    k = rng.randint(3, min(8, len(topic["body"])))
    body = [topic["body"][i] for i in sorted(rng.sample(range(len(topic["body"])), k))]
    parts = [rng.choice(topic["open"])]
    style = rng.random()
    if topic.get("listy") and style < 0.6:
        words = ["First", "Next", "Then", "After that", "Also", "Finally"]
        steps = []
        for i, s in enumerate(body[:6]):
            w = words[i] if i < len(body[:6]) - 1 else "Finally"
            steps.append(f"{w}, {s[0].lower()}{s[1:]}")
        parts.extend(steps)
    else:
        parts.extend(body)
    if rng.random() < 0.75:
        parts.append(rng.choice(topic["close"]))
    sents = [p.format_map(fills) for p in parts]
    title = ""
    if topic.get("title") and rng.random() < 0.3:
        title = rng.choice(topic["title"]).format_map(fills) + "\n\n"
    # vary the layout: one paragraph, two paragraphs, or one sentence per line
    r = rng.random()
    if r < 0.55 or len(sents) < 5:
        text = " ".join(sents)
    elif r < 0.9:
        cut = rng.randint(2, len(sents) - 2)
        text = " ".join(sents[:cut]) + "\n\n" + " ".join(sents[cut:])
    else:
        text = "\n".join(sents)
    return title + text


def build_c4(rng: random.Random) -> list[dict]:
    names = list(C4_TOPICS)
    docs, seen = [], set()
    attempts = 0
    while len(docs) < N_C4:
        attempts += 1
        assert attempts < N_C4 * 50, "could not build enough unique documents"
        name = names[len(docs) % len(names)]
        text = make_c4_doc(rng, name, C4_TOPICS[name])
        n = len(text.split())
        if not 40 <= n <= 200 or text in seen:
            continue
        seen.add(text)
        docs.append({"text": text})
    rng.shuffle(docs)
    return docs


# ---------------------------------------------------------------------------
# facts and word banks shared by the instruction, preference and KTO sets
# ---------------------------------------------------------------------------

CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid",
    "Japan": "Tokyo", "Canada": "Ottawa", "Australia": "Canberra", "Egypt": "Cairo",
    "Kenya": "Nairobi", "Argentina": "Buenos Aires", "Mexico": "Mexico City",
    "India": "New Delhi", "China": "Beijing", "Norway": "Oslo", "Sweden": "Stockholm",
    "Finland": "Helsinki", "Denmark": "Copenhagen", "Poland": "Warsaw",
    "Portugal": "Lisbon", "Greece": "Athens", "Ireland": "Dublin", "Austria": "Vienna",
    "Hungary": "Budapest", "Peru": "Lima", "Chile": "Santiago", "Thailand": "Bangkok",
    "South Korea": "Seoul", "Belgium": "Brussels", "Turkey": "Ankara",
    "New Zealand": "Wellington", "Vietnam": "Hanoi", "Cuba": "Havana",
    "Iceland": "Reykjavik", "Ukraine": "Kyiv", "the United Kingdom": "London",
    "Russia": "Moscow", "Colombia": "Bogota", "Morocco": "Rabat",
}

ANIMAL_CLASS = {
    "dog": "mammal", "whale": "mammal", "dolphin": "mammal", "bat": "mammal",
    "horse": "mammal", "elephant": "mammal", "eagle": "bird", "penguin": "bird",
    "owl": "bird", "sparrow": "bird", "ostrich": "bird", "salmon": "fish",
    "shark": "fish", "trout": "fish", "cod": "fish", "frog": "amphibian",
    "salamander": "amphibian", "toad": "amphibian", "snake": "reptile",
    "turtle": "reptile", "crocodile": "reptile", "lizard": "reptile",
}

DEFINITIONS = {
    "photosynthesis": "Photosynthesis is the process plants use to turn sunlight, water and carbon dioxide into sugar for energy, releasing oxygen as a by-product.",
    "gravity": "Gravity is the force that pulls objects with mass towards each other; it is why things fall to the ground and why the Moon orbits the Earth.",
    "a noun": "A noun is a word that names a person, place, thing or idea, such as 'teacher', 'London', 'chair' or 'freedom'.",
    "a verb": "A verb is a word that describes an action or a state, such as 'run', 'think' or 'be'.",
    "an adjective": "An adjective is a word that describes a noun, such as 'tall', 'blue' or 'quiet'.",
    "a prime number": "A prime number is a whole number greater than 1 whose only divisors are 1 and itself, such as 2, 3, 5, 7 and 11.",
    "evaporation": "Evaporation is the process by which a liquid turns into a gas, like water slowly disappearing from a puddle on a warm day.",
    "an ecosystem": "An ecosystem is a community of living things, such as plants, animals and microbes, together with the environment they live in.",
    "an algorithm": "An algorithm is a clear, step-by-step set of instructions for solving a problem or completing a task.",
    "a metaphor": "A metaphor is a figure of speech that describes something by saying it is something else, as in 'time is a thief'.",
    "a budget": "A budget is a plan for how you will spend and save your money over a period of time.",
    "a volcano": "A volcano is an opening in the Earth's crust through which molten rock, ash and gases can escape.",
    "a glacier": "A glacier is a large, slow-moving mass of ice formed from snow that has built up and compacted over many years.",
    "an atom": "An atom is the smallest unit of a chemical element, made of a nucleus of protons and neutrons surrounded by electrons.",
    "a fraction": "A fraction represents a part of a whole, written as one number over another, such as 3/4.",
    "the perimeter": "The perimeter is the total distance around the outside of a two-dimensional shape.",
    "a habitat": "A habitat is the natural home of an animal or plant, where it finds food, water and shelter.",
    "a synonym": "A synonym is a word that means the same or nearly the same as another word, like 'big' and 'large'.",
    "an antonym": "An antonym is a word with the opposite meaning of another word, like 'hot' and 'cold'.",
    "a thermometer": "A thermometer is an instrument that measures temperature.",
    "a mammal": "A mammal is a warm-blooded animal with hair or fur that feeds its young with milk, such as a dog, a whale or a human.",
    "condensation": "Condensation is the process by which a gas turns into a liquid, like water droplets forming on a cold glass.",
}

# word: (synonym, antonym)
WORDS = {
    "happy": ("joyful", "sad"), "big": ("large", "small"), "fast": ("quick", "slow"),
    "begin": ("start", "finish"), "easy": ("simple", "difficult"), "hot": ("warm", "cold"),
    "brave": ("courageous", "cowardly"), "quiet": ("silent", "loud"),
    "rich": ("wealthy", "poor"), "angry": ("furious", "calm"), "tiny": ("minute", "huge"),
    "strong": ("powerful", "weak"), "bright": ("luminous", "dim"), "old": ("aged", "young"),
    "clean": ("spotless", "dirty"), "kind": ("generous", "cruel"), "true": ("correct", "false"),
    "near": ("close", "far"), "full": ("packed", "empty"), "hard": ("firm", "soft"),
}

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "My neighbour grows tomatoes on her sunny balcony.",
    "We watched the sunset from the top of the hill.",
    "Please remember to water the plants on Friday.",
    "The library closes early on public holidays.",
    "A cup of tea always tastes better after a long walk.",
    "The children built a sandcastle near the water.",
    "Our train was delayed by twenty minutes this morning.",
    "She painted the kitchen a pale shade of green.",
    "Learning a new language takes patience and practice.",
    "The cat slept on the warm windowsill all afternoon.",
    "He fixed the bicycle with an old spanner.",
    "Fresh bread was cooling on the kitchen table.",
    "The museum has a new exhibition about ancient ships.",
    "Rain is expected in the north later today.",
    "They planted an apple tree in the back garden.",
    "Every morning I write a short list of tasks.",
    "The concert started exactly on time.",
    "Owls hunt quietly at night.",
    "The river was calm and clear after the storm.",
    "Our team finished the project two days early.",
    "A good map makes hiking much easier.",
    "The bakery on the corner sells excellent pastries.",
    "Music can make a long drive feel shorter.",
    "I found an old photograph inside the book.",
    "The market is busiest on Saturday mornings.",
    "Bees visit the lavender every summer.",
    "The teacher read a story to the whole class.",
    "Snow covered the rooftops by midnight.",
    "Good sleep helps you think clearly.",
    "The ferry crosses the bay four times a day.",
    "My brother collects stamps from around the world.",
    "Turn off the lights when you leave the room.",
    "The puppy chased its tail in circles.",
    "A gentle breeze moved through the tall grass.",
    "We shared a pizza after the football match.",
    "The old clock in the hall still keeps good time.",
    "Reading before bed helps me relax.",
    "The farmer checked the fences after the wind.",
    "Three small boats rested in the harbour.",
]

SHORT_PHRASES = ["hello world", "good morning", "open the door", "blue sky", "garden path",
                 "paper boat", "silver moon", "quiet river", "coffee time", "happy birthday",
                 "green apple", "red balloon", "north star", "summer rain", "little house"]

# verb: (present third person, past)
VERBS = [("walks", "walked", "to the park"), ("paints", "painted", "the fence"),
         ("cooks", "cooked", "dinner"), ("reads", "read", "a long book"),
         ("writes", "wrote", "a letter"), ("finds", "found", "a coin"),
         ("builds", "built", "a birdhouse"), ("sings", "sang", "a song"),
         ("carries", "carried", "the basket"), ("drives", "drove", "to the market"),
         ("eats", "ate", "an apple"), ("opens", "opened", "the window"),
         ("catches", "caught", "the ball"), ("buys", "bought", "fresh bread"),
         ("cleans", "cleaned", "the kitchen"), ("feeds", "fed", "the ducks")]
SUBJECTS = ["The dog", "My sister", "The old farmer", "Our teacher", "A small boy",
            "The baker", "My grandfather", "The new student", "Her friend", "The neighbour"]

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

ITEMS = [("apples", "apple"), ("pencils", "pencil"), ("stickers", "sticker"),
         ("marbles", "marble"), ("cookies", "cookie"), ("books", "book"),
         ("oranges", "orange"), ("cards", "card"), ("eggs", "egg"), ("stamps", "stamp")]

HAIKUS = {
    "autumn": "Crisp leaves drift and fall\nthe maple lets go of red\ncool wind hums softly",
    "the ocean": "Waves fold on the sand\nsalt air carries gull voices\nthe tide slips away",
    "morning coffee": "Steam curls from the cup\nthe kitchen wakes in slow light\nfirst sip, warm and dark",
    "snow": "Snow hushes the street\nfootprints stitch a quiet path\nthe lamps glow amber",
    "rain": "Rain taps the window\npuddles gather silver light\nthe gutters sing low",
    "a spring garden": "Green shoots split the soil\na robin tugs at a worm\nthe sun warms my hands",
    "mountains": "Stone peaks hold the clouds\na thin trail winds past the pines\ncold air, clear and still",
    "a city at night": "Neon hums softly\ntaxis blur in yellow streaks\nthe late train rolls home",
    "a cat": "The cat finds the sun\nstretches long across the rug\nand sleeps the noon through",
    "friendship": "Two mugs on the porch\nold stories and easy laughs\nthe evening runs long",
}

ADVICE = {
    "How can I fall asleep faster?": "Try keeping a regular bedtime, avoiding screens for the last hour before bed, and keeping your room cool, dark and quiet. A short wind-down routine, like reading a few pages, also helps your body recognise that it is time to sleep.",
    "How do I stay focused while studying?": "Work in short blocks, such as 25 minutes, followed by a 5-minute break. Put your phone in another room, keep one clear goal for each block, and tidy your desk before you start.",
    "What is a good way to start exercising?": "Start small with something you enjoy, like a brisk 20-minute walk three times a week. Increase the time or pace gradually, and rest when you need to; consistency matters more than intensity at first.",
    "How can I save money on groceries?": "Plan your meals for the week, shop with a list, and avoid shopping when you are hungry. Buying seasonal produce and store brands usually lowers the bill noticeably.",
    "How do I write a good cover letter?": "Keep it to one page, address it to a named person if you can, and explain briefly why you want this particular role. Give one or two concrete examples of your achievements and close with a polite thank-you.",
    "How can I keep my houseplants alive?": "Check the light each plant needs, water only when the top few centimetres of soil are dry, and make sure the pot has drainage holes. Overwatering is the most common mistake.",
    "How should I prepare for a job interview?": "Research the company, reread the job description, and prepare short examples of your past work. Practise answering common questions out loud, and prepare one or two questions to ask them.",
    "What can I do to reduce stress?": "Regular exercise, enough sleep and a few minutes of slow breathing each day can all help. It also helps to write down what is worrying you and talk to someone you trust.",
    "How do I make a good first impression?": "Be on time, smile, make eye contact and listen more than you talk. Asking a thoughtful question about the other person shows genuine interest.",
    "How can I learn to cook?": "Start with a few simple recipes you like, such as a soup, a pasta dish and an omelette, and cook each one several times. Learning basic knife skills and tasting as you go will make every recipe easier.",
    "How do I keep a conversation going?": "Ask open questions that start with 'how' or 'what', listen carefully, and follow up on details the other person mentions. Sharing a small related story of your own keeps it balanced.",
    "How can I be more productive in the morning?": "Prepare the night before by choosing your clothes and writing a short to-do list. Start the day with your most important task before checking email or messages.",
    "What is a good way to learn new vocabulary?": "Learn words in context rather than in isolated lists, review them with spaced repetition, and try to use each new word in a sentence of your own.",
    "How do I remove a coffee stain from a shirt?": "Blot the stain as soon as possible with cold water, then rub in a little liquid detergent and let it sit for a few minutes before washing as usual. Avoid hot water until the stain is gone, as heat can set it.",
    "How can I make my passwords more secure?": "Use a long, unique password for every account, ideally generated and stored by a password manager. Turning on two-factor authentication adds another strong layer of protection.",
    "How do I start a reading habit?": "Pick books you genuinely enjoy, keep one with you, and read for just ten minutes a day at a fixed time, such as before bed. Small, regular sessions quickly add up.",
}


def rand_numbers(rng: random.Random, k: int, lo: int = 1, hi: int = 99) -> list[int]:
    return rng.sample(range(lo, hi + 1), k)


def count_vowels(text: str) -> int:
    return sum(1 for c in text.lower() if c in "aeiou")


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    i = 2
    while i * i <= n:
        if n % i == 0:
            return False
        i += 1
    return True


def add_time(h: int, m: int, dh: int, dm: int) -> str:
    """12-hour clock arithmetic; h in 1..12, pm assumed to stay within the day."""
    total = (h % 12) * 60 + m + dh * 60 + dm
    total %= 12 * 60
    nh, nm = divmod(total, 60)
    return f"{nh if nh else 12}:{nm:02d}"


# ---------------------------------------------------------------------------
# 2. instruction-following (alpaca) set
# ---------------------------------------------------------------------------

def _a_word_problem(rng):
    name = rng.choice(FIRST)
    items, one = rng.choice(ITEMS)
    kind = rng.randrange(4)
    if kind == 0:
        a, b = rng.randint(3, 40), rng.randint(2, 30)
        q = f"{name} has {a} {items}. {name} buys {b} more. How many {items} does {name} have now?"
        return q, "", f"{name} now has {a} + {b} = {a + b} {items}."
    if kind == 1:
        a = rng.randint(10, 60)
        b = rng.randint(1, a - 1)
        q = f"{name} had {a} {items} and gave {b} of them to a friend. How many {items} are left?"
        return q, "", f"{name} has {a} - {b} = {a - b} {items if a - b != 1 else one} left."
    if kind == 2:
        n, k = rng.randint(2, 12), rng.randint(2, 12)
        q = f"There are {n} boxes, and each box holds {k} {items}. How many {items} are there in total?"
        return q, "", f"There are {n} x {k} = {n * k} {items} in total."
    n, k = rng.randint(2, 9), rng.randint(2, 12)
    q = f"{name} shares {n * k} {items} equally among {n} friends. How many {items} does each friend get?"
    return q, "", f"Each friend gets {n * k} / {n} = {k} {items if k != 1 else one}."


def _a_arith(rng):
    op = rng.randrange(4)
    if op == 0:
        a, b = rng.randint(10, 999), rng.randint(10, 999)
        return rng.choice([f"What is {a} + {b}?", f"Add {a} and {b}.", f"Calculate the sum of {a} and {b}."]), "", f"{a} + {b} = {a + b}."
    if op == 1:
        a, b = rng.randint(50, 999), rng.randint(10, 499)
        return rng.choice([f"What is {a} - {b}?", f"Subtract {b} from {a}."]), "", f"{a} - {b} = {a - b}."
    if op == 2:
        a, b = rng.randint(2, 30), rng.randint(2, 30)
        return rng.choice([f"What is {a} multiplied by {b}?", f"Calculate {a} x {b}.", f"What is the product of {a} and {b}?"]), "", f"{a} x {b} = {a * b}."
    b, c = rng.randint(2, 15), rng.randint(2, 25)
    return rng.choice([f"What is {b * c} divided by {b}?", f"Divide {b * c} by {b}."]), "", f"{b * c} / {b} = {c}."


CONVERSIONS = [
    # (from plural, to plural, factor or function, exact?)
    ("kilometres", "miles", lambda x: x * 0.621371, False),
    ("miles", "kilometres", lambda x: x * 1.609344, False),
    ("kilograms", "pounds", lambda x: x * 2.20462, False),
    ("hours", "minutes", lambda x: x * 60, True),
    ("minutes", "seconds", lambda x: x * 60, True),
    ("days", "hours", lambda x: x * 24, True),
    ("metres", "centimetres", lambda x: x * 100, True),
    ("litres", "millilitres", lambda x: x * 1000, True),
    ("feet", "inches", lambda x: x * 12, True),
    ("weeks", "days", lambda x: x * 7, True),
]


def convert(rng, allow_temp=True):
    """Return (question-ish description, value, from unit, to unit, answer string)."""
    if allow_temp and rng.random() < 0.25:
        if rng.random() < 0.5:
            c = rng.choice(range(-10, 45, 5))
            f = c * 9 / 5 + 32
            return c, "degrees Celsius", "degrees Fahrenheit", f"{c} degrees Celsius is {fmt_num(f)} degrees Fahrenheit."
        f = rng.choice(range(32, 113, 9))
        c = (f - 32) * 5 / 9
        return f, "degrees Fahrenheit", "degrees Celsius", f"{f} degrees Fahrenheit is {fmt_num(c)} degrees Celsius."
    src, dst, fn, exact = rng.choice(CONVERSIONS)
    x = rng.randint(2, 50)
    y = fn(x)
    if exact:
        ans = f"{x} {src} is {fmt_num(y)} {dst}."
    else:
        ans = f"{x} {src} is about {y:.2f} {dst}."
    return x, src, dst, ans


def _a_convert(rng):
    x, src, dst, ans = convert(rng)
    q = rng.choice([f"Convert {x} {src} to {dst}.", f"How many {dst} are in {x} {src}?",
                    f"Express {x} {src} in {dst}."])
    return q, "", ans


def _num_input(nums):
    return ", ".join(str(n) for n in nums)


def _a_sort(rng):
    nums = rand_numbers(rng, rng.randint(4, 8), 1, 200)
    if rng.random() < 0.6:
        q = rng.choice(["Sort the following numbers in ascending order.",
                        "Arrange these numbers from smallest to largest.",
                        "Put the numbers below in increasing order."])
        return q, _num_input(nums), _num_input(sorted(nums))
    q = rng.choice(["Sort the following numbers in descending order.",
                    "Arrange these numbers from largest to smallest."])
    return q, _num_input(nums), _num_input(sorted(nums, reverse=True))


def _a_alpha(rng):
    pool = ["banana", "apple", "cherry", "mango", "kiwi", "grape", "lemon", "peach", "plum",
            "orange", "melon", "fig", "pear", "lime", "papaya", "apricot", "date", "guava"]
    words = rng.sample(pool, rng.randint(4, 7))
    q = rng.choice(["Sort these words alphabetically.", "Put the following words in alphabetical order."])
    return q, ", ".join(words), ", ".join(sorted(words))


def _a_count_words(rng):
    s = rng.choice(SENTENCES)
    q = rng.choice(["Count the number of words in the following sentence.",
                    "How many words are in this sentence?"])
    return q, s, f"The sentence contains {len(s.split())} words."


def _a_count_vowels(rng):
    s = rng.choice(SENTENCES)
    q = rng.choice(["Count the vowels (a, e, i, o, u) in the following sentence.",
                    "How many vowels (a, e, i, o, u) does this sentence contain?"])
    return q, s, f"The sentence contains {count_vowels(s)} vowels."


def _a_reverse(rng):
    p = rng.choice(SHORT_PHRASES + [w for w in WORDS])
    q = rng.choice(["Reverse the order of the characters in the following text.",
                    "Write the following text backwards, letter by letter."])
    return q, p, p[::-1]


def _a_upper(rng):
    s = rng.choice(SENTENCES)
    if rng.random() < 0.5:
        q = rng.choice(["Convert the following sentence to uppercase.",
                        "Rewrite this sentence in capital letters."])
        return q, s, s.upper()
    q = "Convert the following sentence to lowercase."
    return q, s, s.lower()


def _a_extreme(rng):
    nums = rand_numbers(rng, rng.randint(4, 8), 1, 500)
    k = rng.randrange(4)
    if k == 0:
        return rng.choice(["Find the largest number in the list.", "Which number in this list is the largest?"]), _num_input(nums), f"The largest number is {max(nums)}."
    if k == 1:
        return rng.choice(["Find the smallest number in the list.", "Which number in this list is the smallest?"]), _num_input(nums), f"The smallest number is {min(nums)}."
    if k == 2:
        return "Calculate the sum of these numbers.", _num_input(nums), f"The sum is {sum(nums)}."
    return "Calculate the average of these numbers.", _num_input(nums), f"The average is {fmt_num(round(sum(nums) / len(nums), 2))}."


def _a_capital(rng):
    c = rng.choice(list(CAPITALS))
    q = rng.choice([f"What is the capital of {c}?", f"Name the capital city of {c}.",
                    f"Which city is the capital of {c}?"])
    return q, "", f"The capital of {c} is {CAPITALS[c]}."


def _a_animal(rng):
    a = rng.choice(list(ANIMAL_CLASS))
    cls = ANIMAL_CLASS[a]
    if rng.random() < 0.5:
        return ("Classify the following animal as a mammal, bird, fish, reptile or amphibian.",
                a, f"{a_an(a).capitalize()} is {a_an(cls)}.")
    return f"Is {a_an(a)} a mammal, bird, fish, reptile or amphibian?", "", f"{a_an(a).capitalize()} is {a_an(cls)}."


def _a_define(rng):
    t = rng.choice(list(DEFINITIONS))
    q = rng.choice([f"What is {t}?", f"Define {t}.", f"Explain what {t} is in simple terms."])
    return q, "", DEFINITIONS[t]


def _a_word(rng):
    w = rng.choice(list(WORDS))
    syn, ant = WORDS[w]
    r = rng.randrange(4)
    if r == 0:
        return "Give a synonym for the following word.", w, f"A synonym for \"{w}\" is \"{syn}\"."
    if r == 1:
        return "Give an antonym for the following word.", w, f"An antonym for \"{w}\" is \"{ant}\"."
    if r == 2:
        return f"What is the opposite of \"{w}\"?", "", f"The opposite of \"{w}\" is \"{ant}\"."
    return f"Suggest a word that means the same as \"{w}\".", "", f"\"{syn.capitalize()}\" means much the same as \"{w}\"."


def _a_past(rng):
    subj = rng.choice(SUBJECTS)
    pres, past, obj = rng.choice(VERBS)
    q = rng.choice(["Rewrite the following sentence in the past tense.",
                    "Change this sentence to the past tense."])
    return q, f"{subj} {pres} {obj}.", f"{subj} {past} {obj}."


def _a_summary(rng):
    name, town = rng.choice(FIRST), rng.choice(TOWNS)
    k = rng.randrange(4)
    if k == 0:
        shop, goods = rng.choice([("bakery", "bread and pastries"), ("bookshop", "new and second-hand books"),
                                  ("flower shop", "cut flowers and houseplants"), ("cafe", "coffee and homemade cakes")])
        street = rng.choice(["Elm Street", "Mill Lane", "Station Road", "Market Street", "Harbour Row"])
        year = rng.randint(2005, 2021)
        text = (f"{name} opened a small {shop} on {street} in {year}. The shop sells {goods}. "
                f"Last month it was named the best {shop} in {town} by readers of the local paper.")
        out = f"{name}'s {shop} on {street}, open since {year} and selling {goods}, was recently voted the best in {town}."
    elif k == 1:
        project = rng.choice(["website redesign", "annual report", "training plan", "product launch"])
        date = f"{rng.randint(1, 28)} {rng.choice(MONTHS)}"
        day = rng.choice(DAYS[:5])
        text = (f"The team met on {day} to discuss the {project}. After a long discussion, they agreed to "
                f"finish the first draft by {date}. {name} will share the final version with everyone.")
        out = f"The team agreed to finish the first draft of the {project} by {date}, and {name} will share the final version."
    elif k == 2:
        event = rng.choice(["craft fair", "school concert", "charity quiz", "food festival"])
        day = rng.choice(DAYS[4:])
        place = rng.choice(["the town hall", "the sports centre", "the community centre"])
        time = f"{rng.randint(1, 7)} p.m."
        text = (f"Due to heavy rain, the {event} planned for {day} in {town} has been moved indoors to {place}. "
                f"It will still start at {time}. The organisers apologise for any inconvenience.")
        out = f"Because of rain, the {event} in {town} on {day} will be held indoors at {place}, still starting at {time}."
    else:
        hour = rng.randint(7, 9)
        text = (f"{town} library will extend its opening hours from next month. It will now stay open until "
                f"{hour} p.m. on weekdays. The change follows requests from students and working parents.")
        out = f"From next month, {town} library will stay open until {hour} p.m. on weekdays, after requests from students and working parents."
    q = rng.choice(["Summarise the following text in one sentence.",
                    "Write a one-sentence summary of this passage.",
                    "Give a brief summary of the text below."])
    return q, text, out


def _a_email(rng):
    name = rng.choice(FIRST)
    k = rng.randrange(4)
    if k == 0:
        d1, d2 = rng.sample(DAYS[:5], 2)
        q = f"Write a short, polite email to {name} asking to move our meeting from {d1} to {d2}."
        body = (f"I hope you are well. Would it be possible to move our meeting from {d1} to {d2}? "
                f"Please let me know if that works for you.")
    elif k == 1:
        thing = rng.choice(["the presentation", "my move", "the garden party", "the project report"])
        q = f"Write a brief email thanking {name} for their help with {thing}."
        body = (f"Thank you so much for your help with {thing}. I really appreciate the time and care you "
                f"put into it, and it made a big difference.")
    elif k == 2:
        doc = rng.choice(["the meeting notes", "the latest budget", "the signed contract", "the event schedule"])
        q = f"Write a polite email asking {name} to send a copy of {doc}."
        body = (f"I hope your week is going well. Could you please send me a copy of {doc} when you have a "
                f"moment? Thank you in advance.")
    else:
        mins = rng.choice([10, 15, 20, 30])
        q = f"Write a short email to {name} saying I will be {mins} minutes late to our meeting."
        body = (f"I am sorry, but I am running about {mins} minutes late for our meeting today. "
                f"I will be there as soon as I can. Thank you for your patience.")
    return q, "", f"Dear {name},\n\n{body}\n\nBest regards"


def _a_haiku(rng):
    t = rng.choice(list(HAIKUS))
    q = rng.choice([f"Write a haiku about {t}.", f"Compose a short haiku about {t}."])
    return q, "", HAIKUS[t]


def _a_number_facts(rng):
    k = rng.randrange(3)
    n = rng.randint(2, 150)
    if k == 0:
        return f"Is {n} even or odd?", "", f"{n} is {'even' if n % 2 == 0 else 'odd'}."
    if k == 1:
        if is_prime(n):
            return f"Is {n} a prime number?", "", f"Yes, {n} is a prime number; its only divisors are 1 and {n}."
        d = next(i for i in range(2, n) if n % i == 0)
        return f"Is {n} a prime number?", "", f"No, {n} is not prime, because it is divisible by {d} ({n} = {d} x {n // d})."
    p = rng.choice([10, 20, 25, 50, 75, 5, 15])
    base = rng.choice([20, 40, 60, 80, 100, 120, 200, 400])
    return f"What is {p}% of {base}?", "", f"{p}% of {base} is {fmt_num(p * base / 100)}."


def _a_calendar(rng):
    k = rng.randrange(3)
    if k == 0:
        i = rng.randrange(12)
        return f"Which month comes after {MONTHS[i]}?", "", f"{MONTHS[(i + 1) % 12]} comes after {MONTHS[i]}."
    if k == 1:
        i = rng.randrange(7)
        n = rng.randint(2, 10)
        return f"If today is {DAYS[i]}, what day will it be in {n} days?", "", f"In {n} days it will be {DAYS[(i + n) % 7]}."
    h, m = rng.randint(1, 7), rng.choice(range(0, 60, 5))
    dh, dm = rng.randint(0, 3), rng.choice(range(5, 60, 5))
    dur = (f"{dh} hour{'s' if dh != 1 else ''} and " if dh else "") + f"{dm} minutes"
    return (f"It is {h}:{m:02d} p.m. What time will it be in {dur}?", "",
            f"It will be {add_time(h, m, dh, dm)} p.m.")


def _a_geometry(rng):
    w, h = rng.randint(2, 20), rng.randint(2, 20)
    if rng.random() < 0.5:
        return (f"What is the area of a rectangle that is {w} cm wide and {h} cm long?", "",
                f"The area is {w} x {h} = {w * h} square centimetres.")
    return (f"What is the perimeter of a rectangle with sides of {w} m and {h} m?", "",
            f"The perimeter is 2 x ({w} + {h}) = {2 * (w + h)} metres.")


def _a_advice(rng):
    q = rng.choice(list(ADVICE))
    return q, "", ADVICE[q]


ALPACA_TASKS = [
    (_a_word_problem, 3), (_a_arith, 3), (_a_convert, 3), (_a_sort, 2), (_a_alpha, 1),
    (_a_count_words, 2), (_a_count_vowels, 2), (_a_reverse, 1), (_a_upper, 1), (_a_extreme, 3),
    (_a_capital, 2), (_a_animal, 1), (_a_define, 2), (_a_word, 2), (_a_past, 2), (_a_summary, 2),
    (_a_email, 2), (_a_haiku, 1), (_a_number_facts, 2), (_a_calendar, 2), (_a_geometry, 1),
    (_a_advice, 1),
]


def build_alpaca(rng: random.Random) -> list[dict]:
    fns = [f for f, _ in ALPACA_TASKS]
    weights = [w for _, w in ALPACA_TASKS]
    rows, seen = [], set()
    attempts = 0
    while len(rows) < N_ALPACA:
        attempts += 1
        assert attempts < N_ALPACA * 100
        ins, inp, out = rng.choices(fns, weights)[0](rng)
        key = (ins, inp)
        if key in seen:
            continue
        seen.add(key)
        rows.append({"instruction": ins, "input": inp, "output": out})
    return rows


# ---------------------------------------------------------------------------
# 3. identity set ({{name}} and {{author}} are filled in by the library)
# ---------------------------------------------------------------------------

ID_ANSWERS = {
    "who": [
        "I am {{name}}, an AI assistant developed by {{author}}. How can I help you today?",
        "I am {{name}}, an AI assistant built by {{author}}. What can I do for you?",
        "I'm {{name}}, an AI assistant created by {{author}}. I'm happy to help with your questions.",
    ],
    "name": [
        "My name is {{name}}. I am an AI assistant developed by {{author}}.",
        "I am {{name}}, an AI assistant developed by {{author}}. You can call me {{name}}.",
        "You can call me {{name}}. I am an AI assistant built by {{author}}.",
    ],
    "maker": [
        "I am {{name}}, and I was developed by {{author}}.",
        "I am {{name}}, an AI assistant created by {{author}}.",
        "I'm {{name}}. {{author}} developed me to be a helpful AI assistant.",
    ],
    "not_other": [
        "No, I am {{name}}, an AI assistant developed by {{author}}.",
        "No. I am {{name}}, an AI assistant built by {{author}}, not another company's model.",
        "I'm not. I am {{name}}, an AI assistant created by {{author}}.",
    ],
    "greet": [
        "Hello! I am {{name}}, an AI assistant developed by {{author}}. How can I help you today?",
        "Hi there! I'm {{name}}, an AI assistant built by {{author}}. What can I do for you?",
        "Hello! I am {{name}}. How can I assist you today?",
    ],
    "human": [
        "No, I am {{name}}, an AI assistant developed by {{author}}, not a human.",
        "I am not a person. I am {{name}}, an AI assistant created by {{author}}.",
    ],
    "abilities": [
        "I am {{name}}, an AI assistant developed by {{author}}. I can answer questions, explain ideas, help with writing and solve simple problems.",
        "I'm {{name}}, an AI assistant by {{author}}. I can help you with questions, writing, summaries and everyday tasks.",
    ],
}

ID_QUESTIONS = {
    "who": [
        "Who are you?", "who are you?", "Who are you", "who are you", "WHO ARE YOU?",
        "Who are you exactly?", "who r u", "who are u?", "Who are yuo?", "Who am I talking to?",
        "Who am I speaking with?", "Tell me who you are.", "Can you tell me who you are?",
        "What are you?", "Please introduce yourself.", "Introduce yourself.",
        "introduce yourself", "Tell me about yourself.", "Describe yourself.",
        "Who is this?", "What kind of assistant are you?", "Who exactly am I chatting with?",
        "May I know who you are?", "Give me a short introduction of yourself.",
    ],
    "name": [
        "What is your name?", "what is your name", "What's your name?", "whats your name",
        "What is ur name?", "Do you have a name?", "What should I call you?",
        "What do I call you?", "How should I address you?", "Tell me your name.",
        "Your name?", "name?", "What are you called?", "May I ask your name?",
        "Do you have a name I can use?", "What name do you go by?",
    ],
    "maker": [
        "Who made you?", "Who created you?", "who created you", "Who built you?",
        "Who developed you?", "Who trained you?", "Which company developed you?",
        "Which company made you?", "Who is your creator?", "Who is your developer?",
        "Who owns you?", "Where do you come from?", "Who programmed you?",
        "What organisation built you?", "Who is behind you?", "who made u",
    ],
    "not_other": [
        "Are you ChatGPT?", "are you chatgpt", "Are you GPT-4?", "Are you Claude?",
        "Are you Gemini?", "Are you made by OpenAI?", "Are you Siri?", "Are you Alexa?",
        "Is this ChatGPT?", "Were you made by Google?", "Are you a Llama model from Meta?",
        "Are you Bard?",
    ],
    "greet": [
        "hi", "Hi", "hello", "Hello!", "hey", "Hey there!", "Good morning!", "Good evening",
        "Hi, who is this?", "Hello, who are you?", "hiya", "Greetings!",
    ],
    "human": [
        "Are you a human?", "Are you a real person?", "Am I talking to a robot?",
        "Are you a bot?", "Are you an AI?", "Is there a person typing these replies?",
    ],
    "abilities": [
        "What can you do?", "What are you able to help with?", "How can you help me?",
        "What are your capabilities?", "What is your purpose?", "What do you do?",
    ],
}


def build_identity(rng: random.Random) -> list[dict]:
    rows = []
    for cat, qs in ID_QUESTIONS.items():
        answers = ID_ANSWERS[cat]
        for i, q in enumerate(qs):
            # the plain "Who are you?" forms always get the canonical answer
            if cat == "who" and q.lower().strip("?") == "who are you":
                out = answers[0]
            elif i == 0:
                out = answers[0]
            else:
                out = rng.choice(answers)
            rows.append({"instruction": q, "input": "", "output": out})
    rng.shuffle(rows)
    return rows


# ---------------------------------------------------------------------------
# 4./5. preference (DPO) and desirability (KTO) sets
# ---------------------------------------------------------------------------

FRIENDLY_TAILS = ["", "", " Hope that helps!", " Let me know if you have any other questions.",
                  " Happy to help with anything else.", " Feel free to ask if you need more.",
                  " I hope this is useful!"]

CURT = [
    "Figure it out yourself.", "Not my problem.", "Look it up.", "I don't feel like answering that.",
    "Why would you even ask that?", "Ask someone else.", "That's too boring to answer.",
    "Obviously. Next question.", "Do your own homework.", "I can't be bothered.",
    "Whatever. Google it.", "No.", "You should already know this.", "Stop asking me simple things.",
]

OFF_TOPIC = [
    "My favourite colour is blue, by the way.",
    "Let's talk about something else. Have you ever been to the seaside?",
    "Bananas are a good source of potassium.",
    "I was just thinking about how nice a long nap would be.",
    "The weather is probably nice somewhere right now.",
    "Did you know that octopuses have three hearts?",
    "Anyway, I prefer talking about football.",
    "Here is a fun fact: honey can keep for a very long time.",
    "I like turtles.",
    "Speaking of which, have you tried the new cafe downtown?",
    "That reminds me of a song I heard yesterday.",
    "Cats are better than dogs, in my opinion.",
]


def _off_by(rng, x: int) -> int:
    d = rng.choice([-10, -3, -2, -1, 1, 2, 3, 10])
    return x + d


def qa_arith(rng):
    op = rng.randrange(4)
    if op == 0:
        a, b = rng.randint(12, 499), rng.randint(12, 499)
        p = rng.choice([f"What's {a} plus {b}?", f"Can you add {a} and {b} for me?",
                        f"Quick question: what is {a} + {b}?"])
        return p, f"{a} + {b} = {a + b}.", f"{a} + {b} = {_off_by(rng, a + b)}."
    if op == 1:
        a, b = rng.randint(100, 900), rng.randint(10, 99)
        p = rng.choice([f"What do I get if I take {b} away from {a}?", f"Could you work out {a} minus {b}?",
                        f"I need {a} - {b}. What is it?"])
        return p, f"{a} - {b} = {a - b}.", f"{a} - {b} = {_off_by(rng, a - b)}."
    if op == 2:
        a, b = rng.randint(3, 25), rng.randint(3, 25)
        p = rng.choice([f"What's {a} times {b}?", f"Can you multiply {a} by {b}?",
                        f"Quick one: {a} x {b}?"])
        return p, f"{a} x {b} = {a * b}.", f"{a} x {b} = {_off_by(rng, a * b)}."
    b, c = rng.randint(2, 12), rng.randint(3, 30)
    p = rng.choice([f"What is {b * c} divided by {b}?", f"If I split {b * c} into {b} equal parts, how big is each part?"])
    return p, f"{b * c} / {b} = {c}.", f"{b * c} / {b} = {_off_by(rng, c)}."


def qa_story(rng):
    items, one = rng.choice(ITEMS)
    a = rng.randint(8, 50)
    b = rng.randint(1, a - 2)
    c = rng.randint(2, 20)
    k = rng.randrange(2)
    if k == 0:
        p = f"I had {a} {items} and gave {b} to a friend. How many do I have left?"
        return p, f"You have {a - b} {items if a - b != 1 else one} left, because {a} - {b} = {a - b}.", f"You have {_off_by(rng, a - b)} {items} left."
    p = f"I have {a} {items} and my sister gives me {c} more. How many {items} do I have now?"
    return p, f"You now have {a + c} {items}, because {a} + {c} = {a + c}.", f"You now have {_off_by(rng, a + c)} {items}."


def qa_capital(rng):
    c = rng.choice(list(CAPITALS))
    wrong = rng.choice([v for k, v in CAPITALS.items() if k != c])
    p = rng.choice([f"Do you know the capital of {c}?", f"What's the capital city of {c}?",
                    f"Tell me the capital of {c}, please.", f"I forgot: what is the capital of {c}?"])
    return p, f"The capital of {c} is {CAPITALS[c]}.", f"The capital of {c} is {wrong}."


def qa_convert(rng):
    x, src, dst, ans = convert(rng)
    p = rng.choice([f"How many {dst} is {x} {src}?", f"Can you convert {x} {src} into {dst}?",
                    f"Please turn {x} {src} into {dst}."])
    # wrong: a plausible slip of the computed value
    m = re.search(r" is (about )?(-?[\d.]+) ", ans)
    val = float(m.group(2))
    bad = m.group(2)
    while float(bad) == val:
        bad = fmt_num(round(val * rng.choice([0.5, 2, 1.5, 0.8]) + rng.choice([1, 3, 7]), 2))
    wrong = ans[:m.start(2)] + bad + ans[m.end(2):]
    return p, ans, wrong


def _swap_one(rng, xs):
    ys = list(xs)
    i = rng.randrange(len(ys) - 1)
    ys[i], ys[i + 1] = ys[i + 1], ys[i]
    return ys


def qa_sort(rng):
    nums = rand_numbers(rng, rng.randint(4, 7), 1, 150)
    p = rng.choice([f"Could you put these numbers in order from smallest to largest: {_num_input(nums)}?",
                    f"Sort {_num_input(nums)} from low to high, please."])
    good = sorted(nums)
    return p, f"In ascending order: {_num_input(good)}.", f"In ascending order: {_num_input(_swap_one(rng, good))}."


def qa_largest(rng):
    nums = rand_numbers(rng, rng.randint(4, 7), 1, 300)
    p = rng.choice([f"Which is the biggest number here: {_num_input(nums)}?",
                    f"Out of {_num_input(nums)}, which number is largest?"])
    other = rng.choice([n for n in nums if n != max(nums)])
    return p, f"The largest number is {max(nums)}.", f"The largest number is {other}."


def qa_words(rng):
    s = rng.choice(SENTENCES)
    n = len(s.split())
    p = rng.choice([f"How many words are in this sentence: \"{s}\"",
                    f"Count the words for me: \"{s}\""])
    return p, f"That sentence has {n} words.", f"That sentence has {_off_by(rng, n)} words."


def qa_animal(rng):
    a = rng.choice(list(ANIMAL_CLASS))
    cls = ANIMAL_CLASS[a]
    wrong = rng.choice([c for c in sorted(set(ANIMAL_CLASS.values())) if c != cls])
    p = rng.choice([f"Is {a_an(a)} a mammal, bird, fish, reptile or amphibian?",
                    f"What type of animal is {a_an(a)}: mammal, bird, fish, reptile or amphibian?"])
    return p, f"{a_an(a).capitalize()} is {a_an(cls)}.", f"{a_an(a).capitalize()} is {a_an(wrong)}."


def qa_opposite(rng):
    w = rng.choice(list(WORDS))
    syn, ant = WORDS[w]
    p = rng.choice([f"What's the opposite of \"{w}\"?", f"Give me an antonym for \"{w}\"."])
    return p, f"The opposite of \"{w}\" is \"{ant}\".", f"The opposite of \"{w}\" is \"{syn}\"."


def qa_define(rng):
    t = rng.choice(list(DEFINITIONS))
    other = rng.choice([d for k, d in DEFINITIONS.items() if k != t])
    p = rng.choice([f"Can you explain what {t} is?", f"What does {t} mean? Keep it short.",
                    f"In simple words, what is {t}?"])
    return p, DEFINITIONS[t], other


def qa_upper(rng):
    s = rng.choice(SENTENCES)
    p = f"Please write this in capital letters: {s}"
    return p, s.upper(), s.lower()


def qa_parity(rng):
    n = rng.randint(3, 999)
    even = n % 2 == 0
    p = rng.choice([f"Is {n} an even number?", f"Is {n} odd or even?"])
    good = f"{n} is {'even' if even else 'odd'}."
    bad = f"{n} is {'odd' if even else 'even'}."
    if p.startswith("Is") and "an even" in p:
        good = ("Yes, " if even else "No, ") + good
        bad = ("No, " if even else "Yes, ") + bad
    return p, good, bad


def qa_advice(rng):
    q = rng.choice(list(ADVICE))
    return q, ADVICE[q], None


def qa_haiku(rng):
    t = rng.choice(list(HAIKUS))
    p = rng.choice([f"Could you write me a haiku about {t}?", f"I'd love a short haiku about {t}."])
    return p, HAIKUS[t], None


QA_TASKS = [
    (qa_arith, 4), (qa_story, 2), (qa_capital, 3), (qa_convert, 3), (qa_sort, 2),
    (qa_largest, 2), (qa_words, 2), (qa_animal, 2), (qa_opposite, 2), (qa_define, 2),
    (qa_upper, 1), (qa_parity, 2), (qa_advice, 2), (qa_haiku, 1),
]


def make_qa(rng):
    fns = [f for f, _ in QA_TASKS]
    return rng.choices(fns, [w for _, w in QA_TASKS])[0](rng)


def friendly(rng, core: str) -> str:
    if "\n" in core:  # haiku: keep the poem clean, add a short friendly line
        return core + rng.choice(["", "\n\nI hope you enjoy it!"])
    return core + rng.choice(FRIENDLY_TAILS)


def bad_answer(rng, wrong: str | None) -> tuple[str, str]:
    """Return (kind, text) for a rejected / undesirable answer."""
    r = rng.random()
    if wrong is not None and r < 0.45:
        return "wrong", wrong
    if r < (0.72 if wrong is not None else 0.55):
        return "curt", rng.choice(CURT)
    return "off_topic", rng.choice(OFF_TOPIC)


def make_followup(rng):
    """A two-step exchange: (first prompt, first answer, follow-up, good, wrong)."""
    k = rng.randrange(4)
    if k == 0:
        a, b, m = rng.randint(5, 60), rng.randint(5, 60), rng.randint(2, 9)
        s = a + b
        return (f"What is {a} + {b}?", f"{a} + {b} = {s}.",
                rng.choice([f"Great, now multiply that by {m}.", f"And if I multiply the result by {m}?"]),
                f"{s} x {m} = {s * m}.", f"{s} x {m} = {_off_by(rng, s * m)}.")
    if k == 1:
        c1, c2 = rng.sample(list(CAPITALS), 2)
        wrong = rng.choice([v for k2, v in CAPITALS.items() if k2 != c2])
        return (f"What is the capital of {c1}?", f"The capital of {c1} is {CAPITALS[c1]}.",
                rng.choice([f"And what about {c2}?", f"Thanks. What's the capital of {c2}?"]),
                f"The capital of {c2} is {CAPITALS[c2]}.", f"The capital of {c2} is {wrong}.")
    if k == 2:
        nums = rand_numbers(rng, rng.randint(4, 6), 1, 99)
        other = rng.choice([n for n in nums if n != max(nums)])
        return (f"Sort these numbers from smallest to largest: {_num_input(nums)}.",
                f"In ascending order: {_num_input(sorted(nums))}.",
                rng.choice(["Which of them is the largest?", "Now tell me the biggest one."]),
                f"The largest number is {max(nums)}.", f"The largest number is {other}.")
    h = rng.randint(2, 12)
    return (f"How many minutes are in {h} hours?", f"There are {h * 60} minutes in {h} hours.",
            rng.choice(["And how many seconds is that?", "How many seconds would that be?"]),
            f"{h * 60} minutes is {h * 3600} seconds.", f"{h * 60} minutes is {_off_by(rng, h * 3600)} seconds.")


def build_dpo(rng: random.Random) -> list[dict]:
    rows, seen = [], set()
    n_multi = 0
    attempts = 0
    while len(rows) < N_DPO:
        attempts += 1
        assert attempts < N_DPO * 100
        if n_multi < N_DPO_MULTI and rng.random() < 0.2:
            p1, a1, p2, good, wrong = make_followup(rng)
            conv = [{"from": "human", "value": p1}, {"from": "gpt", "value": a1},
                    {"from": "human", "value": p2}]
        else:
            p, good, wrong = make_qa(rng)
            conv = [{"from": "human", "value": p}]
        key = tuple(m["value"] for m in conv)
        if key in seen:
            continue
        seen.add(key)
        if len(conv) == 3:
            n_multi += 1
        _, bad = bad_answer(rng, wrong)
        rows.append({"conversations": conv,
                     "chosen": {"from": "gpt", "value": friendly(rng, good)},
                     "rejected": {"from": "gpt", "value": bad}})
    assert n_multi >= 20
    return rows


def build_kto(rng: random.Random) -> list[dict]:
    assert N_KTO % 2 == 0
    rows, seen = [], set()
    attempts = 0
    while len(rows) < N_KTO:
        attempts += 1
        assert attempts < N_KTO * 100
        p, good, wrong = make_qa(rng)
        if p in seen:
            continue
        seen.add(p)
        label = len(rows) < N_KTO // 2
        answer = friendly(rng, good) if label else bad_answer(rng, wrong)[1]
        rows.append({"messages": [{"role": "user", "content": p},
                                  {"role": "assistant", "content": answer}],
                     "label": label})
    rng.shuffle(rows)
    return rows


# ---------------------------------------------------------------------------
# 6. registry and main
# ---------------------------------------------------------------------------

# ---------------------------------------------------------------------------
# 6. math word problems with verifiable answers (GRPO), GSM8K-shaped
# ---------------------------------------------------------------------------

# The example matters: without it SmolLM2-135M-Instruct never writes the marker, and GRPO has nothing to reward.
MATH_SYSTEM = ("Solve the problem. Show your working briefly, then give the final answer on a last "
               "line of its own, written as: #### <number>\nExample:\nWhat is 2 + 3?\n2 + 3 = 5\n#### 5")
MATH_NAMES = [("Mia", "she"), ("Theo", "he"), ("Ava", "she"), ("Ravi", "he"), ("Lena", "she"),
              ("Jonah", "he"), ("Nora", "she"), ("Felix", "he"), ("Zara", "she"), ("Owen", "he"),
              ("Ines", "she"), ("Kai", "he"), ("Lily", "she"), ("Marco", "he"), ("Sana", "she"),
              ("Hugo", "he"), ("Tara", "she"), ("Emil", "he"), ("Ruby", "she"), ("Idris", "he")]
MATH_ITEMS = [("notebook", "notebooks"), ("pen", "pens"), ("sandwich", "sandwiches"),
              ("ticket", "tickets"), ("toy car", "toy cars"), ("cupcake", "cupcakes")]


def _m_names(rng):
    (n1, p1), (n2, _) = rng.sample(MATH_NAMES, 2)
    return n1, p1, p1.capitalize(), n2


def _m_arith(rng, op: str):
    """A plain 'What is a OP b?' with small numbers and a non-negative whole answer."""
    if op == "+":
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        c = a + b
    elif op == "-":
        a = rng.randint(10, 99)
        b = rng.randint(1, a - 1)
        c = a - b
    elif op == "*":
        a, b = rng.randint(2, 12), rng.randint(2, 12)
        c = a * b
    else:
        b, c = rng.randint(2, 12), rng.randint(2, 12)
        a = b * c
    return f"What is {a} {op} {b}?", f"{a} {op} {b} = {c}", c


def _mw_apples(rng):
    n1, _, P, _ = _m_names(rng)
    n, k = rng.randint(2, 9), rng.randint(2, 12)
    e = rng.randint(2, min(20, n * k - 2))
    t = n * k
    return (f"{n1} has {n} bags with {k} apples in each bag. {P} eats {e} of the apples. "
            f"How many apples does {n1} have left?",
            f"{n1} has {n} bags of {k} apples: {n} * {k} = {t}. {P} eats {e}: {t} - {e} = {t - e}.", t - e)


def _mw_books(rng):
    n1, _, P, _ = _m_names(rng)
    a, b = rng.randint(5, 60), rng.randint(2, 40)
    return (f"{n1} has {a} books on a shelf. {P} buys {b} more at a book sale. How many books does {n1} have now?",
            f"{n1} starts with {a} books and buys {b} more: {a} + {b} = {a + b}.", a + b)


def _mw_coins(rng):
    n1, _, P, _ = _m_names(rng)
    a, b = rng.randint(5, 50), rng.randint(2, 30)
    s = a + b
    c = rng.randint(2, s - 2)
    return (f"{n1} has {a} coins in a jar. {P} finds {b} more coins, then spends {c} coins on a snack. "
            f"How many coins does {n1} have now?",
            f"After finding more: {a} + {b} = {s}. After spending {c}: {s} - {c} = {s - c}.", s - c)


def _mw_bus(rng):
    a = rng.randint(10, 50)
    b, c = rng.randint(2, a - 1), rng.randint(2, 30)
    m = a - b
    return (f"A bus has {a} passengers. At the next stop, {b} people get off and {c} people get on. "
            f"How many passengers are on the bus now?",
            f"After {b} get off: {a} - {b} = {m}. After {c} get on: {m} + {c} = {m + c}.", m + c)


def _mw_trays(rng):
    n1, _, _, _ = _m_names(rng)
    t, k = rng.randint(2, 9), rng.randint(2, 12)
    return (f"{n1} bakes {t} trays of cookies with {k} cookies on each tray. How many cookies does {n1} bake?",
            f"{t} trays of {k} cookies: {t} * {k} = {t * k}.", t * k)


def _mw_share_cookies(rng):
    n1, _, _, _ = _m_names(rng)
    n, k = rng.randint(2, 10), rng.randint(2, 12)
    return (f"{n1} has {n * k} cookies and shares them equally among {n} friends. "
            f"How many cookies does each friend get?",
            f"Each friend gets {n * k} / {n} = {k}.", k)


def _mw_pages(rng):
    n1, _, _, _ = _m_names(rng)
    p, d = rng.randint(2, 25), rng.randint(2, 9)
    return (f"{n1} reads {p} pages of a book every day. How many pages does {n1} read in {d} days?",
            f"{p} pages a day for {d} days: {p} * {d} = {p * d}.", p * d)


def _mw_pages_left(rng):
    n1, _, _, _ = _m_names(rng)
    p, d = rng.randint(3, 20), rng.randint(2, 7)
    read = p * d
    total = read + rng.randint(5, 120)
    return (f"A book has {total} pages. {n1} reads {p} pages a day for {d} days. "
            f"How many pages are left to read?",
            f"{n1} reads {p} * {d} = {read} pages. Pages left: {total} - {read} = {total - read}.", total - read)


def _mw_change(rng):
    n1, _, _, _ = _m_names(rng)
    one, many = rng.choice(MATH_ITEMS)
    price, n = rng.randint(2, 9), rng.randint(2, 6)
    cost = price * n
    bill = next(b for b in (10, 20, 50, 100) if b > cost)
    return (f"One {one} costs ${price}. {n1} buys {n} {many} and pays with a ${bill} note. "
            f"How much change does {n1} get, in dollars?",
            f"The {many} cost {n} * {price} = {cost} dollars. Change: {bill} - {cost} = {bill - cost}.", bill - cost)


def _mw_spend(rng):
    n1, _, _, _ = _m_names(rng)
    (one1, _), (one2, _) = rng.sample(MATH_ITEMS, 2)
    a, b = rng.randint(2, 40), rng.randint(2, 40)
    return (f"{n1} buys {a_an(one1)} for ${a} and {a_an(one2)} for ${b}. "
            f"How much does {n1} spend in total, in dollars?",
            f"{a} + {b} = {a + b} dollars.", a + b)


def _mw_age_future(rng):
    n1, _, _, n2 = _m_names(rng)
    a, d, y = rng.randint(5, 15), rng.randint(2, 30), rng.randint(2, 10)
    m = a + d
    return (f"{n1} is {a} years old. {n2} is {d} years older than {n1}. How old will {n2} be in {y} years?",
            f"{n2} is {a} + {d} = {m} years old now. In {y} years: {m} + {y} = {m + y}.", m + y)


def _mw_age_gap(rng):
    n1, _, _, n2 = _m_names(rng)
    a = rng.randint(12, 80)
    b = rng.randint(3, a - 2)
    return (f"{n1} is {a} years old and {n2} is {b} years old. How many years older is {n1} than {n2}?",
            f"{a} - {b} = {a - b} years.", a - b)


def _mw_eggs(rng):
    n1, _, _, _ = _m_names(rng)
    n = rng.randint(2, 8)
    t = n * 12
    u = rng.randint(2, min(30, t - 2))
    return (f"A carton holds 12 eggs. {n1} buys {n} cartons and uses {u} eggs to bake cakes. "
            f"How many eggs are left?",
            f"{n} cartons of 12 eggs: {n} * 12 = {t}. After using {u}: {t} - {u} = {t - u}.", t - u)


def _mw_chairs(rng):
    r, c = rng.randint(2, 12), rng.randint(2, 12)
    t = r * c
    s = rng.randint(2, t - 2)
    return (f"A hall has {r} rows of chairs with {c} chairs in each row. {s} chairs are taken. "
            f"How many chairs are empty?",
            f"There are {r} * {c} = {t} chairs. Empty: {t} - {s} = {t - s}.", t - s)


def _mw_savings(rng):
    n1, _, _, _ = _m_names(rng)
    a, s, w = rng.randint(5, 50), rng.randint(2, 15), rng.randint(2, 10)
    x = s * w
    return (f"{n1} has ${a} saved and saves ${s} more every week. "
            f"How much money will {n1} have after {w} weeks, in dollars?",
            f"{n1} saves {s} * {w} = {x} dollars. Total: {a} + {x} = {a + x}.", a + x)


def _mw_stickers(rng):
    n1, _, _, n2 = _m_names(rng)
    a = rng.randint(20, 90)
    b = rng.randint(5, a - 2)
    return (f"{n1} has {a} stickers and {n2} has {b} stickers. How many more stickers does {n1} have than {n2}?",
            f"{a} - {b} = {a - b} more stickers.", a - b)


def _mw_pizza(rng):
    n1, _, _, _ = _m_names(rng)
    n, k = rng.randint(2, 6), rng.choice([6, 8, 10, 12])
    t = n * k
    e = rng.randint(2, t - 2)
    return (f"{n1} orders {n} pizzas, and each pizza is cut into {k} slices. The family eats {e} slices. "
            f"How many slices are left?",
            f"{n} * {k} = {t} slices. Left: {t} - {e} = {t - e}.", t - e)


def _mw_walk(rng):
    n1, _, _, _ = _m_names(rng)
    m, d = rng.randint(5, 30), rng.randint(2, 7)
    x = m + m
    return (f"{n1} walks {m} minutes to school and {m} minutes back home each day. "
            f"How many minutes does {n1} walk in {d} days?",
            f"Each day: {m} + {m} = {x} minutes. In {d} days: {x} * {d} = {x * d}.", x * d)


def _mw_birds(rng):
    a = rng.randint(5, 40)
    b, c = rng.randint(2, a - 1), rng.randint(2, 20)
    m = a - b
    return (f"There are {a} birds on a fence. {b} birds fly away, and then {c} more birds land on the fence. "
            f"How many birds are on the fence now?",
            f"After {b} fly away: {a} - {b} = {m}. After {c} land: {m} + {c} = {m + c}.", m + c)


def _mw_sweets(rng):
    n1, _, P, _ = _m_names(rng)
    n, per = rng.randint(2, 8), rng.randint(2, 10)
    t = n * per
    b = rng.randint(2, t - 2)
    a = t - b
    return (f"{n1} has {a} sweets and buys {b} more. {P} then shares all the sweets equally among {n} friends. "
            f"How many sweets does each friend get?",
            f"{a} + {b} = {t} sweets. Each friend gets {t} / {n} = {per}.", per)


def _mw_marbles(rng):
    n1, _, _, _ = _m_names(rng)
    k, bags = rng.randint(2, 12), rng.randint(2, 12)
    return (f"{n1} has {k * bags} marbles and puts them into bags of {k}. How many bags does {n1} fill?",
            f"{k * bags} / {k} = {bags} bags.", bags)


def _mw_tulips(rng):
    n1, _, _, _ = _m_names(rng)
    r, k, m = rng.randint(2, 9), rng.randint(2, 10), rng.randint(2, 20)
    x = r * k
    return (f"{n1} plants {r} rows of tulips with {k} tulips in each row, then plants {m} more by the gate. "
            f"How many tulips does {n1} plant in total?",
            f"In rows: {r} * {k} = {x} tulips. Total: {x} + {m} = {x + m}.", x + m)


MATH_WORD = [_mw_apples, _mw_books, _mw_coins, _mw_bus, _mw_trays, _mw_share_cookies, _mw_pages,
             _mw_pages_left, _mw_change, _mw_spend, _mw_age_future, _mw_age_gap, _mw_eggs, _mw_chairs,
             _mw_savings, _mw_stickers, _mw_pizza, _mw_walk, _mw_birds, _mw_sweets, _mw_marbles, _mw_tulips]


def build_math(rng: random.Random) -> list[dict]:
    """Half plain arithmetic, half one- or two-step word problems (templates taken in turn)."""
    rows, seen = [], set()

    def add(question: str, working: str, answer: int) -> bool:
        if question in seen:
            return False
        assert 0 <= answer < 1000, (question, answer)
        seen.add(question)
        rows.append({"system": MATH_SYSTEM, "question": question, "answer": f"{working}\n#### {answer}"})
        return True

    for i in range(N_MATH // 2):
        while not add(*_m_arith(rng, "+-*/"[i % 4])):
            pass
    for i in range(N_MATH - N_MATH // 2):
        while not add(*MATH_WORD[i % len(MATH_WORD)](rng)):
            pass
    rng.shuffle(rows)
    return rows


def build_math_tables(rng: random.Random) -> list[dict]:
    """Every 'What is a * b?' and 'What is (a * b) / b?' with a and b from 2 to 12, in a shuffled order:
    the facts a 135M model already holds, so that a short RL run can teach it to state them in the format."""
    rows = []
    for a in range(2, 13):
        for b in range(2, 13):
            rows.append((f"What is {a} * {b}?", f"{a} * {b} = {a * b}", a * b))
            rows.append((f"What is {a * b} / {b}?", f"{a * b} / {b} = {a}", a))
    rng.shuffle(rows)
    return [{"system": MATH_SYSTEM, "question": q, "answer": f"{working}\n#### {answer}"} for q, working, answer in rows]


DATASET_INFO = {
    "c4_demo": {"file_name": "c4_demo.jsonl", "columns": {"prompt": "text"}},
    "alpaca_en_demo": {"file_name": "alpaca_en_demo.json"},
    "identity": {"file_name": "identity.json"},
    "dpo_en_demo": {"file_name": "dpo_en_demo.json", "ranking": True, "formatting": "sharegpt",
                    "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"}},
    "kto_en_demo": {"file_name": "kto_en_demo.json", "formatting": "sharegpt",
                    "columns": {"messages": "messages", "kto_tag": "label"},
                    "tags": {"role_tag": "role", "content_tag": "content",
                             "user_tag": "user", "assistant_tag": "assistant"}},
    "math_demo": {"file_name": "math_demo.json",
                  "columns": {"prompt": "question", "response": "answer", "system": "system"}},
    "math_tables_demo": {"file_name": "math_tables_demo.json",
                         "columns": {"prompt": "question", "response": "answer", "system": "system"}},
}


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def main(out_dir: Path = HERE) -> dict[str, int]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # one seeded generator per set, so changing one set does not reshuffle the others
    c4 = build_c4(random.Random(SEED + 1))
    alpaca = build_alpaca(random.Random(SEED + 2))
    identity = build_identity(random.Random(SEED + 3))
    dpo = build_dpo(random.Random(SEED + 4))
    kto = build_kto(random.Random(SEED + 5))
    math = build_math(random.Random(MATH_SEED))
    tables = build_math_tables(random.Random(TABLES_SEED))
    with open(out_dir / "c4_demo.jsonl", "w", encoding="utf-8") as f:
        for doc in c4:
            f.write(json.dumps(doc, ensure_ascii=False) + "\n")
    _write_json(out_dir / "alpaca_en_demo.json", alpaca)
    _write_json(out_dir / "identity.json", identity)
    _write_json(out_dir / "dpo_en_demo.json", dpo)
    _write_json(out_dir / "kto_en_demo.json", kto)
    _write_json(out_dir / "math_demo.json", math)
    _write_json(out_dir / "math_tables_demo.json", tables)
    _write_json(out_dir / "dataset_info.json", DATASET_INFO)
    counts = {"c4_demo": len(c4), "alpaca_en_demo": len(alpaca), "identity": len(identity),
              "dpo_en_demo": len(dpo), "kto_en_demo": len(kto), "math_demo": len(math),
              "math_tables_demo": len(tables)}
    return counts


if __name__ == "__main__":
    for name, n in main().items():
        print(f"{name}: {n} rows")
