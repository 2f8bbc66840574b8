# Part 3: classify, qa, rewrite, plan, chat, long-context.
from part1 import add

add("classify",
"Classify the sentiment of this review as positive, negative or mixed: The food was delicious but we waited an hour for a table.",
"Is this email spam or not spam? 'Congratulations! You have been selected to receive a free cruise. Click here within 24 hours to claim.'",
"Classify each sentence as a fact or an opinion:\n1. Water boils at 100 degrees Celsius at sea level.\n2. Summer is the best season.\n3. The Eiffel Tower is in Paris.\n4. Jazz is more interesting than pop.",
"Which category does this support ticket belong to: billing, technical problem, account access or feedback? 'I was charged twice for my subscription this month.'",
"Label the language of each phrase: 'buenos días', 'guten Morgen', 'bonjour', 'dzień dobry', 'god morgen'.",
"Classify these animals as mammals, birds, reptiles or fish: dolphin, penguin, gecko, salmon, bat, ostrich.",
"Decide whether this sentence is formal or informal and rewrite it in the other register: 'Hey, gonna be late, traffic is nuts.'",
"Classify the urgency of this message as low, medium or high, and explain: 'The production database disk is 97 percent full and growing about one percent per hour.'",
"Is the following headline clickbait? 'You won't believe what this man found in his garden.' Explain your answer.",
"Sort these tasks into 'do now', 'schedule' and 'drop': reply to the landlord about the broken heater; reorganise the bookshelf by colour; renew passport expiring in five months; watch a documentary someone recommended.",
"Classify the intent of each user message: (a) 'what time do you close today' (b) 'cancel my order' (c) 'your app keeps crashing' (d) 'thanks, that helped'.",
"Given the review 'Battery life is fine, screen is gorgeous, but the speakers are tinny and the price is steep', list the aspects mentioned and the sentiment for each.",
"Is this a question about history, science, geography or sport? 'Which river flows through Budapest?'",
"Classify the following energy meter reading as plausible or suspicious, and explain: a laptop CPU package reports 4,000 joules over a 10-second idle window.",
)

add("qa",
"What is the capital of Australia?",
"How many bones are in the adult human body?",
"Who wrote 'Pride and Prejudice'?",
"What is the boiling point of water at the top of a high mountain, and why is it different?",
"Which planet has the most moons known today?",
"What is the speed of light in a vacuum, approximately?",
"What does HTTP stand for?",
"In what year did the first person walk on the Moon?",
"What is photosynthesis?",
"How long does light from the Sun take to reach the Earth?",
"What is the difference between RAM and storage?",
"What is the largest ocean on Earth?",
"What is a joule, and how does it relate to a watt?",
"Why do we have leap years?",
"Who painted the Mona Lisa?",
"What is the chemical formula for table salt?",
"How does a GPU differ from a CPU?",
"What is the tallest mountain in Africa?",
"What is the main difference between TCP and UDP?",
"What is a prime number? List the primes below 30.",
"Answer using only the text below. Question: when did the bridge reopen?\n\nThe old stone bridge closed in March after inspectors found cracks in two of its arches. Repairs took longer than planned because the river was high for most of the spring. The bridge reopened to pedestrians on 2 August and to cars three weeks later.",
"Based on the passage, why did the company change its name?\n\nFounded in 1952 as Western Valve and Pump, the company spent its first three decades making parts for irrigation systems. In the 1980s it began selling water meters, and by the end of the decade meters made up most of its revenue. In 1991 it renamed itself Westmeter to reflect what it actually sold, and because customers abroad kept confusing it with an unrelated firm called Western Valve.",
)

add("rewrite",
"Rewrite this sentence to be more concise: In the event that the meeting is cancelled, we will make sure to let you know about it as soon as we possibly can.",
"Rewrite the following paragraph in the passive voice: The committee approved the budget. The director signed the contract. The builders will start work in May.",
"Make this message more polite: Send me the report now, it's late.",
"Rewrite this for a ten-year-old: The mitochondria generate most of the chemical energy needed to power the cell's biochemical reactions.",
"Fix the grammar and spelling: Their going to the libary tomorow to return there books, its overdue since last week.",
"Rewrite this error message so that it tells the user what to do: 'Error 0x80070005'.",
"Turn these notes into a well-written paragraph: new printer arrived - set up on floor 2 - needs driver from IT portal - colour printing costs extra - ask reception for paper.",
"Rewrite this job advert to be more inclusive and less full of jargon: 'We need a rockstar ninja dev who crushes code and thrives in a fast-paced, work-hard-play-hard culture.'",
"Rewrite the following text as a numbered list of steps: First you unplug the machine, and after that you remove the back cover by undoing the four screws, then you can lift out the filter and rinse it under warm water before putting everything back in the reverse order.",
"Paraphrase this sentence in three different ways: The results were better than we expected.",
"Rewrite this paragraph to remove the repetition:\n\nThe new software is fast. The new software is also easy to use. Many users say the new software is the best software they have used. The new software will be released next month.",
"Rewrite the following formal letter as a short, friendly text message.\n\nDear Mr. Olsen,\n\nI am writing to inform you that your order has been dispatched today and should arrive within two to three working days. Should you have any questions regarding your delivery, please do not hesitate to contact our customer service department.\n\nYours sincerely,\nThe Dispatch Team",
"Rewrite this as a tweet of at most 280 characters: Our team has measured the energy used by ten open language models on the same hardware and found that, at the same batch size, the most efficient model uses less than a third of the energy per generated token of the least efficient one.",
"Turn this passive, vague statement into a clear, active one: It has been decided that certain changes to the schedule will be implemented.",
)

add("plan",
"Plan a three-day trip to Lisbon for someone who likes food and history but not museums.",
"Give me a one-week beginner running plan, three runs a week.",
"I have two hours to study for a chemistry exam on acids and bases. Make a plan.",
"Outline the steps to set up a small home network with a router, two laptops and a network printer.",
"Create a weekly meal plan for a vegetarian family of four on a tight budget.",
"List the steps to change a flat tyre on a car.",
"Plan a benchmark to compare the energy per token of two language models fairly. What must be kept the same?",
"Draft an agenda for a one-hour project kickoff meeting.",
"Make a checklist for moving into a new apartment.",
"How would you organise a small community garden with twenty members who each want a plot?",
"Outline a plan to learn Spanish to a conversational level in one year while working full time.",
"I want to reduce my household electricity use by 20 percent. Suggest a step-by-step plan with the biggest savings first.",
)

add("chat",
"Hi! How are you today?",
"Tell me a joke.",
"Can you recommend a good book for a long flight?",
"I'm feeling a bit unmotivated today. Any tips?",
"What should I cook tonight? I have rice, eggs, spinach and some cheese.",
"Good morning.",
"Thanks for the help earlier!",
"What's a fun fact about octopuses?",
"I can't decide between a cat and a dog. Help me think it through.",
"Suggest a name for my new houseplant.",
"Help me write a polite message declining a wedding invitation.",
"What board games are good for two players?",
"Say something encouraging.",
"What is a good way to start a conversation at a networking event?",
)

LONG_A = """The following is an excerpt from the operations handbook of a mid-sized regional railway. Read it and answer the questions at the end.

Section 4. Winter operations.

4.1 General. Between 1 November and 31 March the railway operates a winter timetable. Journey times on the mountain line are extended by up to eight minutes to allow for reduced adhesion and for the inspection of points at the three high stations. Drivers must report any loss of adhesion, however brief, to the control centre, giving the location to the nearest kilometre post.

4.2 Points heating. All points on the mountain line are fitted with electric heaters. The heaters switch on automatically when the rail temperature falls below two degrees Celsius and the humidity is above eighty percent. The control centre can override the automatic setting in either direction. Each heater draws about four kilowatts; the line has sixty-two heated points. To limit the peak demand on the substation at Kessel, no more than forty heaters may run at the same time; the control system staggers them in groups.

4.3 Snow clearance. When more than fifteen centimetres of snow are forecast, the snow plough locomotive is moved to the depot at Upper Ash the evening before. The first passenger train of the day may not run until the plough has cleared the whole mountain section and the driver of the plough has confirmed by radio that the line is clear. If the plough cannot complete the section by 05:30, the first two passenger services are replaced by buses between Lower Ash and Kessel.

4.4 Passenger information. Station staff must announce delays of more than five minutes and update the displays within two minutes of the control centre issuing a new estimate. During replacement bus services, a member of staff must be present at Lower Ash to direct passengers.

Questions:
1. What is the maximum electrical power the points heaters can draw at once?
2. Under what conditions do the heaters switch on by themselves?
3. What happens if the snow plough is late?
4. Who must be told about a loss of adhesion, and what information must be given?"""

LONG_B = """Below are three short descriptions of fictional laptops. Compare them in a table (price, weight, battery life, screen, ports) and then recommend one for each of these buyers: a student on a budget, a photographer who travels, and a software developer who works mostly at a desk.

Laptop A, the Corvid 13, costs 799 euros. It weighs 1.2 kilograms and has a 13-inch matte screen with a resolution of 1920 by 1200 pixels. The manufacturer claims fourteen hours of battery life, and independent reviews measured about eleven hours of web browsing. It has two USB-C ports and a headphone jack, 16 GB of memory and a 512 GB drive. The keyboard is comfortable but the webcam is poor.

Laptop B, the Heron Pro 16, costs 2,199 euros. It weighs 2.1 kilograms and has a 16-inch glossy screen with a wide colour gamut, factory calibrated, at 3200 by 2000 pixels. Battery life in reviews was around seven hours. It offers two USB-C ports, one USB-A port, an HDMI output, a full-size SD card reader and a headphone jack, with 32 GB of memory and a 1 TB drive. The fans become loud under sustained load.

Laptop C, the Finch Air 14, costs 1,299 euros. It weighs 1.0 kilogram and has a 14-inch OLED screen with excellent colours at 2880 by 1800 pixels. Reviewers measured about nine hours of battery life. It has only two USB-C ports, no headphone jack and no card reader, with 16 GB of memory and a 1 TB drive. It has no fan and stays silent, but slows down during long exports."""

LONG_C = """Read the story and write a summary of about eighty words, then list the three most important decisions the main character makes.

When the storm knocked out the power, Ingrid was the only one left in the observatory. The generator started, as it always did, but within a minute the fuel gauge showed what the logbook had not: someone had forgotten to refill the tank after the last test. She had perhaps two hours of electricity.

The telescope was tracking a comet that would not be visible again for ninety years. The team had spent three years preparing for this night. Ingrid could keep the telescope and its cameras running, or she could keep the heating on in the residence building, where two visiting students were asleep and the temperature outside had fallen to twenty below zero.

She went to the residence first and woke the students. Together they carried blankets and the camping stove down to the control room, which was small and would stay warm longest. Then she switched off the heating in every other building, shut down the servers that were not recording data, and reduced the cameras to a single instrument.

The comet's images came in, grainy but usable, until the generator coughed and stopped at 3:40. By then the storm had passed. In the morning the road crew arrived with fuel, and Ingrid wrote a new line at the top of the generator checklist, in capital letters."""

LONG_D = """You are reviewing a design proposal. Read it and list its strengths, its weaknesses, and three questions you would ask the authors.

Proposal: measure the energy of every inference request individually.

Today our service reports energy only per hour, from the rack's power distribution unit. Product teams want to know what a single request costs, so that expensive features can be identified. We propose to read the GPU's cumulative energy counter before and after every request, and to attribute the difference to that request.

The counter can be read in about a millisecond. Most requests take between 200 milliseconds and two seconds, so the overhead is below one percent. Requests run concurrently on the same GPU in batches of up to 64, so we will divide the energy of the interval by the number of requests in flight, weighted by their number of tokens.

We will store the per-request energy in the existing request log, which is kept for thirty days. A dashboard will show the energy per feature and per customer. We expect the first version to be ready in six weeks with two engineers.

Risks: the counter's update period may be longer than some requests. Idle power is included in every measurement, which may make short requests look expensive. We have not yet decided whether CPU and memory energy should be included."""

LONG_E = """Translate the following passage into plain, modern English and then summarise it in two sentences.

Whereas it hath been found by long experience that the keeping of the common roads of this parish in good and sufficient repair hath been neglected, to the great hurt and hindrance of all persons travelling thereon, and more especially in the winter season, when the ways are become so deep and foul that carriages may not pass without great danger; it is therefore ordered that every householder within the said parish shall, upon six days in each year, to be appointed by the surveyor, provide one able labourer, or in default thereof pay unto the surveyor the sum of one shilling for each day so omitted, the monies so received to be laid out upon the said roads and upon no other use whatsoever."""

LONG_F = """The table below shows the results of a small inference benchmark. Explain what the numbers show, point out anything that looks inconsistent, and suggest what should be measured next.

model       batch  output tokens/s  energy J/token  p50 latency ms  p99 latency ms
small-1b        1              42            2.10              24              31
small-1b        8             290            0.41              27              45
small-1b       32             910            0.15              35              88
medium-7b       1              18            6.80              55              70
medium-7b       8             121            1.20              66             112
medium-7b      32             380            0.52              84             260
medium-7b      64             395            0.55             160             900

All runs used greedy decoding, 256 new tokens and the same 512 prompts on one GPU. Energy is the GPU counter only; CPU and DRAM were not measured. Each configuration ran once."""

add("long",
LONG_A, LONG_B, LONG_C, LONG_D, LONG_E, LONG_F,
"Write a detailed explanation, of about five paragraphs, of how a modern CPU saves power when it is idle and when it is lightly loaded. Cover clock frequency scaling, voltage scaling, sleep states of the cores and of the package, and why waking up has a cost. End with advice for someone who wants to measure the energy of a short program accurately.",
"Write an essay of around six hundred words on the question: should cities ban private cars from their historic centres? Present the strongest arguments on both sides, give examples of the kinds of measures cities have tried, and finish with your own balanced conclusion.",
)

# Short fragments: completion-style prompts of a few words.
add("complete",
"Once upon a time",
"The three primary colours are",
"def main():",
"Dear hiring manager,",
"The best way to learn a new language is",
"In conclusion,",
"SELECT name FROM",
"Ingredients for a simple tomato sauce:",
"The year is 2150. Humanity",
"Top five tips for better sleep:",
)
