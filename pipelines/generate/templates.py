"""Violating text families per policy: paraphrases with slots, and translations of some.

A *family* is one way of violating a policy (a crypto-doubling scam, a doxxing post, ...).
Each family has several English paraphrases; a few families are also translated into
other languages, because real backlogs violate in every language while the starter text
encoder is English-first: the accuracy gap per language is meant to be measured.

Families are split into train and held-out per policy (see :func:`family_splits`), so a
held-out row shows a way of violating that training never saw.

Content is deliberately abstract and non-graphic: hate targets invented groups, self-harm
and violence carry intent without methods, child-safety text is an ambiguous secrecy or
meet-up context that only violates next to a school or playground image.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Family:
    """One violating family: ``policy/name``, English paraphrases, translations by ISO 639-1."""

    policy: str
    name: str
    paraphrases: tuple[str, ...]
    translations: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.policy}/{self.name}"


def _f(policy: str, name: str, *paraphrases: str, **translations: str | tuple[str, ...]) -> Family:
    tr = {k: (v,) if isinstance(v, str) else v for k, v in translations.items()}
    return Family(policy, name, tuple(paraphrases), tr)


# Slot fillers. Language-neutral on purpose (names, numbers, links) so that one filler set
# serves every translation. Group names are invented: the model must learn the
# dehumanising pattern, not a real group's name.
SLOTS: dict[str, tuple[str, ...]] = {
    "name": ("Anna Keller", "Marco Rossi", "Priya Sharma", "Li Wei", "Olga Petrova", "Ahmed Hassan", "Sofia Lind",
             "João Silva", "Kenji Sato", "Nadia Novak", "Tom Becker", "Ewa Kowalska"),
    "place": ("Lyon", "Leipzig", "Porto", "Gdansk", "Ghent", "Bergen", "Austin", "Leeds", "Recife", "Pune",
              "Surabaya", "Osaka", "Utrecht", "Tartu", "Cluj"),
    "amount": ("500", "1,000", "2,500", "250", "5,000", "750"),
    "coin": ("BTC", "ETH", "USDT", "SOL"),
    "url": ("bit.ly/3xQzW", "secure-verify-account.info", "claim-prize-now.net", "wallet-double.io",
            "parcel-redelivery.co", "login-bank-check.com"),
    "phone": ("+49 151 2345 6789", "+33 6 12 34 56 78", "+1 512 555 0147", "+44 7700 900123", "+91 98765 43210",
              "+39 347 123 4567", "+48 512 345 678", "+55 11 91234 5678"),
    "address": ("Hauptstrasse 12, 04109 Leipzig", "14 Rue Victor Hugo, 69002 Lyon", "221 Elm Street, Austin TX 78701",
                "Rua das Flores 88, Porto", "ul. Dluga 5/7, Gdansk", "Korenmarkt 3, Ghent", "9 Park Lane, Leeds LS1"),
    "idnum": ("L01X00T47", "C4R9KX2P1", "AB1234567", "X7J2M9Q0", "P00481752"),
    "dob": ("12.03.1987", "1991-07-24", "04/11/1979", "30.01.2002"),
    "iban": ("DE89 3704 0044 0532 0130 00", "FR14 2004 1010 0505 0001 3M02 606", "NL91 ABNA 0417 1643 00"),
    "group": ("Zorvians", "Keltharans", "Miroshi", "Tavellites", "Quennites", "Ostrani"),
    "brand": ("Nexa", "Globex", "Vitalis", "Orbix", "QuickPay", "StarBank"),
    "herb": ("ginger", "turmeric", "lemon balm", "nettle"),
    "day": ("Friday", "Saturday night", "tomorrow", "Monday morning", "the 14th"),
    "num": ("3", "5", "10", "30"),
    "app": ("Snapline", "GhostChat", "Wisp", "Kik-Lite"),
    "gift": ("a new phone", "game credits", "concert tickets", "sneakers"),
}  # fmt: skip

FAMILIES: tuple[Family, ...] = (
    # --- scams -------------------------------------------------------------------------
    _f("scams", "crypto_double",
       "Send {amount} {coin} to my wallet and I will send back double within an hour, guaranteed!",
       "Limited giveaway: every {coin} you deposit at {url} comes back 2x. Only today.",
       "I doubled my savings in one night. DM me, send {amount} and watch it grow, no risk.",
       es="Envía {amount} {coin} a mi cartera y te devuelvo el doble en una hora, ¡garantizado!",
       de="Schick {amount} {coin} an meine Wallet und du bekommst in einer Stunde das Doppelte zurück, garantiert!",
       fr="Envoyez {amount} {coin} sur mon portefeuille et je vous renvoie le double en une heure, garanti !",
       ru="Отправь {amount} {coin} на мой кошелёк, и через час я верну вдвое больше, гарантировано!",
       pt="Envie {amount} {coin} para minha carteira e devolvo o dobro em uma hora, garantido!",
       hi="मेरे वॉलेट में {amount} {coin} भेजो और एक घंटे में दोगुना वापस पाओ, पक्की गारंटी!",
       id="Kirim {amount} {coin} ke dompet saya dan dalam satu jam kembali dua kali lipat, dijamin!"),
    _f("scams", "prize_claim",
       "Congratulations! You have won a {brand} gift card worth {amount} EUR. Claim it at {url} before midnight.",
       "Your number was selected in our lottery. Pay a small {amount} fee to release your prize.",
       "WINNER: you are our 1,000,000th visitor. Enter your card details at {url} to receive your reward.",
       es="¡Felicidades! Has ganado una tarjeta regalo {brand} de {amount} EUR. "
          "Reclámala en {url} antes de medianoche.",
       de="Glückwunsch! Sie haben einen {brand}-Gutschein über {amount} EUR gewonnen. Jetzt unter {url} einlösen.",
       ar="مبروك! لقد ربحت بطاقة هدايا {brand} بقيمة {amount} يورو. اطلبها عبر {url} قبل منتصف الليل.",
       zh="恭喜！您赢得了价值{amount}欧元的{brand}礼品卡。请在午夜前到{url}领取。",
       th="ยินดีด้วย! คุณได้รับบัตรของขวัญ {brand} มูลค่า {amount} ยูโร รับได้ที่ {url} ก่อนเที่ยงคืน"),
    _f("scams", "advance_fee",
       "I am a lawyer for a late client who left {amount},000 USD. I need your help to transfer it, you keep 30%.",
       "Dear friend, a business opportunity: pay the release fee of {amount} and receive a share of the inheritance.",
       "Customs is holding a parcel of gold in your name. Send {amount} for clearance to receive it."),
    _f("scams", "bank_phishing",
       "{brand} security alert: your account is locked. Verify your identity at {url} within 24 hours.",
       "Unusual sign-in detected on your {brand} account. Confirm your PIN here: {url}",
       "Your card has been suspended. Log in at {url} and re-enter your details to avoid closure.",
       es="Alerta de seguridad de {brand}: su cuenta está bloqueada. Verifique su identidad en {url} en 24 horas.",
       de="{brand}-Sicherheitshinweis: Ihr Konto ist gesperrt. Bestätigen Sie Ihre Identität unter {url}.",
       fr="Alerte sécurité {brand} : votre compte est bloqué. Vérifiez votre identité sur {url} sous 24 heures.",
       pt="Alerta de segurança {brand}: sua conta foi bloqueada. Confirme sua identidade em {url} em 24 horas.",
       id="Peringatan keamanan {brand}: akun Anda diblokir. Verifikasi identitas Anda di {url} dalam 24 jam.",
       ja="{brand}セキュリティ警告：アカウントがロックされました。24時間以内に{url}で本人確認してください。"),
    _f("scams", "parcel_fee",
       "Your package could not be delivered. Pay the 1.99 redelivery fee at {url}",
       "DHL notice: parcel on hold due to unpaid customs. Settle now: {url}",
       "We tried to deliver your parcel {day}. Reschedule and pay shipping at {url}"),
    _f("scams", "fake_job",
       "Work from home and earn {amount} EUR a day just liking videos! Registration fee only 49 EUR.",
       "Hiring now: easy online job, pay {amount} for the starter kit and start earning today.",
       "Recruiter here. Send a deposit of {amount} to secure your remote position at {brand}."),
    _f("scams", "romance",
       "My love, I am stuck at the airport in {place}, please send {amount} so I can come to you.",
       "I never felt this way before. I need {amount} for my visa, I promise to pay you back when we meet.",
       "Darling, the soldier's pay is blocked, wire {amount} via gift cards and we can be together."),
    _f("scams", "tech_support",
       "VIRUS DETECTED on your device! Call Microsoft support now at {phone} to avoid data loss.",
       "Your computer is infected. Install our remote tool from {url} and pay {amount} for the cleanup.",
       "Warning: your {brand} licence expired, call {phone} immediately to restore access."),
    _f("scams", "investment_signal",
       "Join my VIP group: 100% accurate trading signals, {num}x returns every week. Entry {amount} USD.",
       "Secret stock the banks don't want you to know about, buy before {day}, guaranteed {num}0% profit.",
       "Forex robot makes {amount} a day on autopilot. Only {num} spots left, pay now at {url}."),
    _f("scams", "charity_fake",
       "Flood victims in {place} need you: donate via gift card codes sent to this account.",
       "Urgent: help the orphans of {place}, send {amount} to my personal wallet, every coin counts.",
       "Disaster relief fund (unofficial): pay to {url}, no receipts but 100% goes to victims."),
    # --- misinformation -----------------------------------------------------------------
    _f("misinformation", "vaccine_chip",
       "The {brand} vaccine contains microchips that let the government track you. Share before it's deleted!",
       "Nurses confirm: every jab now has a tracking chip. Wake up people.",
       "They put nanobots in the vaccines to control the population, it's all documented.",
       es="La vacuna de {brand} contiene microchips para que el gobierno te rastree. "
          "¡Compártelo antes de que lo borren!",
       de="Der {brand}-Impfstoff enthält Mikrochips, mit denen die Regierung dich überwacht. "
          "Teilen, bevor es gelöscht wird!",
       fr="Le vaccin {brand} contient des micropuces pour que le gouvernement vous suive. Partagez avant la censure !",
       ru="Вакцина {brand} содержит микрочипы, чтобы правительство следило за тобой. Распространи, пока не удалили!",
       ar="لقاح {brand} يحتوي على شرائح دقيقة تسمح للحكومة بتتبعك. انشرها قبل أن تُحذف!",
       pt="A vacina da {brand} contém microchips para o governo rastrear você. Compartilhe antes que apaguem!"),
    _f("misinformation", "election_rigged",
       "The election in {place} was rigged: thousands of ballots were shredded overnight. The result is fake.",
       "BREAKING: voting machines in {place} flipped votes, officials are hiding it.",
       "Dead people voted by the thousands in {place}. Don't accept this stolen election.",
       es="Las elecciones en {place} fueron amañadas: miles de papeletas destruidas durante la noche.",
       hi="{place} में चुनाव में धांधली हुई, रात में हजारों मतपत्र नष्ट कर दिए गए। नतीजा फर्जी है।",
       zh="{place}的选举被操纵了：数千张选票在一夜之间被销毁。结果是假的。",
       ja="{place}の選挙は不正だった。何千枚もの投票用紙が一晩で破棄された。"),
    _f("misinformation", "miracle_cure",
       "Doctors are hiding that {herb} tea cures cancer in {num} days. Big pharma doesn't want you to know.",
       "Stop your chemo, a daily spoon of {herb} melts tumours, my aunt is proof.",
       "This {herb} remedy cures diabetes forever, throw away your insulin."),
    _f("misinformation", "5g_virus",
       "5G towers spread the virus, that's why {place} got sick first after the installation.",
       "The new antennas in {place} emit radiation that causes the flu. Protect your family.",
       "Coincidence? Every outbreak started next to a 5G mast."),
    _f("misinformation", "water_poison",
       "The government is poisoning the water supply of {place} on purpose. Don't drink tap water!",
       "Leaked memo: chemicals added to {place} water to make people obedient.",
       "They are putting sterilising agents in the water, share this everywhere."),
    _f("misinformation", "climate_hoax",
       "Climate change is a hoax invented to tax you, the temperature data is all made up.",
       "Scientists admitted the warming numbers were fabricated, it's all a scam.",
       "There has been no warming at all, the satellites are faked by {brand}."),
    _f("misinformation", "fake_quote",
       "{name} said on live TV that the war was planned to raise prices. Why is nobody reporting this?",
       "Minister {name} admitted the floods in {place} were artificially created.",
       "Leaked audio: {name} confesses the pandemic was staged."),
    _f("misinformation", "staged_event",
       "The attack in {place} was staged with crisis actors, look at the same woman in every photo.",
       "Nobody died in {place}, the whole thing was filmed in a studio.",
       "The earthquake in {place} was caused by a secret weapon test, they are covering it up."),
    _f("misinformation", "voting_date",
       "Reminder: because of high turnout, voters of {place} vote on Monday this year, not Sunday.",
       "You can vote by text message this year, just send your name to {phone}.",
       "Official: polling stations in {place} close at noon, don't bother going later."),
    # --- hate ---------------------------------------------------------------------------
    _f("hate", "vermin",
       "{group} are vermin and should be driven out of {place}.",
       "{group} are rats, they breed and spread like a disease.",
       "Those {group} are parasites, every one of them.",
       es="Los {group} son alimañas y hay que echarlos de {place}.",
       de="Die {group} sind Ungeziefer und gehören aus {place} vertrieben.",
       fr="Les {group} sont de la vermine et doivent être chassés de {place}.",
       ru="{group} — это паразиты, их надо выгнать из {place}.",
       ar="الـ{group} حشرات ويجب طردهم من {place}.",
       pl="{group} to robactwo, trzeba ich wygnać z {place}."),
    _f("hate", "not_human",
       "{group} are not human, they are animals and should be treated like animals.",
       "Let's be honest, {group} are subhuman.",
       "No {group} deserves rights, they are less than people.",
       hi="{group} इंसान नहीं हैं, वे जानवर हैं और उनके साथ जानवरों जैसा व्यवहार होना चाहिए।",
       zh="{group}不是人，是畜生，就该像畜生一样对待。",
       it="I {group} non sono umani, sono animali e vanno trattati come animali."),
    _f("hate", "never_hire",
       "Never hire a {group}, they are all thieves and liars.",
       "Every {group} I've met was a criminal. Keep them out of your business.",
       "Landlords in {place}: don't rent to {group}, they ruin everything."),
    _f("hate", "cleanse",
       "We need to cleanse {place} of {group} once and for all.",
       "{place} will only be safe when the last {group} is gone.",
       "Time to take our streets back from the {group}."),
    _f("hate", "schools",
       "{group} children should not be allowed in our schools.",
       "Keep {group} kids away from ours, they are a bad influence by birth.",
       "Segregate the {group} from normal pupils."),
    _f("hate", "replacement",
       "The {group} are replacing us, it's a planned invasion of {place}.",
       "They import {group} to breed us out. Resist.",
       "Our people are being replaced by {group}, and the elites love it."),
    _f("hate", "inferior",
       "Science proves {group} are genetically inferior.",
       "{group} are stupid by nature, no education will fix that.",
       "A {group} brain is simply smaller, that's just facts."),
    _f("hate", "mock_religion",
       "The {group} religion is a cult of savages, ban it.",
       "Burn every {group} temple, their faith is filth.",
       "Anyone who prays like a {group} is a terrorist."),
    _f("hate", "disease",
       "{group} bring disease wherever they go, quarantine them all.",
       "The outbreak in {place} is the {group}' fault, they are dirty.",
       "Don't touch anything a {group} touched."),
    # --- violence -----------------------------------------------------------------------
    _f("violence", "threat_person",
       "I know where {name} lives. Time to teach them a lesson they won't forget.",
       "{name} better watch their back, someone is going to hurt them soon.",
       "If I see {name} in {place} again I will break every bone in their body.",
       es="Sé dónde vive {name}. Es hora de darle una lección que no olvidará.",
       de="Ich weiß, wo {name} wohnt. Zeit, ihm eine Lektion zu erteilen, die er nie vergisst.",
       fr="Je sais où habite {name}. Il est temps de lui donner une leçon qu'il n'oubliera pas.",
       ru="Я знаю, где живёт {name}. Пора преподать урок, который не забудется.",
       pt="Eu sei onde {name} mora. Hora de dar uma lição que nunca vai esquecer."),
    _f("violence", "incite_crowd",
       "Everyone meet at {place} on {day}, bring something heavy. We make them pay.",
       "Show up at the {place} rally {day} and make sure they go home in ambulances.",
       "Enough talking. {day} we storm the {place} office and smash everything.",
       ar="الجميع إلى {place} يوم {day}، أحضروا شيئًا ثقيلًا. سنجعلهم يدفعون الثمن.",
       hi="सब लोग {day} को {place} पहुँचो, कुछ भारी साथ लाना। हम उन्हें सबक सिखाएँगे।",
       tr="Herkes {day} {place} meydanına, yanınızda ağır bir şey getirin. Bedelini ödeyecekler."),
    _f("violence", "glorify_attack",
       "The attack in {place} was a good start. More of this, please.",
       "Respect to the shooter of {place}, a true hero.",
       "They finally got what they deserved in {place}, should happen every week."),
    _f("violence", "arson",
       "Let's burn down the {brand} warehouse in {place}, nobody will miss it.",
       "Someone should set fire to that shelter in {place} tonight.",
       "Petrol, matches, {day}. The {place} office goes up in flames."),
    _f("violence", "beat_up",
       "Anyone who votes for {name} deserves a beating.",
       "Catch one of them alone and beat him until he stops moving.",
       "We should jump the next one we see in {place}."),
    _f("violence", "weapon_show",
       "Just bought my new toy, {name} will meet it soon.",
       "Loaded and ready for {day}. You know who you are.",
       "Sharpened the blade tonight. Someone in {place} is going to regret it."),
    _f("violence", "animal_cruelty",
       "Kicking stray dogs in {place} is my new hobby, who wants to join?",
       "Poison the cats in the park, they're pests.",
       "Watch me hurt this dog, I'll post the video {day}."),
    _f("violence", "school_threat",
       "Don't come to school on {day}. I'm serious.",
       "Something big is going to happen at the {place} high school, stay home.",
       "Last day for all of you at {place} college. Goodbye."),
    # --- self_harm ----------------------------------------------------------------------
    _f("self_harm", "goodbye",
       "I don't want to be here anymore. Everyone would be better off without me.",
       "This is my goodbye. Thank you to the few who cared.",
       "Tonight I end it all. Don't try to find me.",
       es="Ya no quiero estar aquí. Todos estarían mejor sin mí.",
       de="Ich will nicht mehr hier sein. Allen ginge es besser ohne mich.",
       fr="Je ne veux plus être là. Tout le monde serait mieux sans moi.",
       pt="Não quero mais estar aqui. Todos ficariam melhor sem mim.",
       ru="Я больше не хочу быть здесь. Всем будет лучше без меня.",
       ja="もうここにいたくない。私がいない方がみんな幸せだ。"),
    _f("self_harm", "starve_challenge",
       "Join the {num}-day no-food challenge, weakness leaves the body. Post your days!",
       "Day {num} without eating, who's with me? Thinner is better.",
       "Pro tip: drink water when hungry so you never eat. Skinny is the goal.",
       zh="加入{num}天不吃饭挑战，软弱离开身体。晒出你的天数！",
       ar="انضموا إلى تحدي {num} أيام بدون طعام، الضعف يغادر الجسد!"),
    _f("self_harm", "hide_marks",
       "How do you hide the marks from your parents in summer? Asking for a reason.",
       "Long sleeves again today so nobody sees what I did.",
       "Best way to cover the scars before gym class?"),
    _f("self_harm", "encourage",
       "If you feel that way just do it, nobody will stop you.",
       "You should just end it, honestly, no one cares.",
       "Go ahead, you've been talking about it for months."),
    _f("self_harm", "worthless",
       "I deserve the pain, I'm worthless and I hurt myself to feel something.",
       "Every time I fail I punish myself. It's the only thing that works.",
       "Relapsed again tonight. I'm a burden to everyone."),
    _f("self_harm", "plan_date",
       "I've decided on {day}. Everything is arranged. Sorry.",
       "Wrote my letters. {day} it will be over.",
       "Counting down to {day}, then nobody has to deal with me anymore."),
    _f("self_harm", "pact",
       "Anyone want to make a pact? DM me, we do it together on {day}.",
       "Looking for someone who feels the same, let's end it together.",
       "Group chat for people who are done with life, link in bio."),
    _f("self_harm", "purging",
       "Purged three times today, proud of myself.",
       "Eat, purge, repeat. Who else is on this path?",
       "Tips to purge quietly so family doesn't hear?"),
    # --- personal_data ------------------------------------------------------------------
    _f("personal_data", "dox_address",
       "{name} lives at {address}. Go and tell them what you think of them.",
       "Found the home address of the referee: {address}. You know what to do.",
       "Here's where {name} sleeps: {address}. Pay a visit.",
       es="{name} vive en {address}. Id a decirle lo que pensáis.",
       de="{name} wohnt in {address}. Sagt ihm persönlich, was ihr von ihm haltet.",
       fr="{name} habite au {address}. Allez lui dire ce que vous pensez.",
       pl="{name} mieszka pod adresem {address}. Powiedzcie mu, co o nim myślicie.",
       ru="{name} живёт по адресу {address}. Скажите ему всё лично."),
    _f("personal_data", "leak_phone",
       "Leaking my ex's number: {phone}. Call them day and night.",
       "{name}'s private mobile is {phone}, spam away.",
       "This is the personal number of the teacher: {phone}. Flood it.",
       ar="رقم هاتف {name} الخاص هو {phone}، اتصلوا به ليلًا ونهارًا.",
       hi="{name} का निजी नंबर {phone} है, दिन-रात कॉल करो।",
       id="Nomor pribadi {name} adalah {phone}, telepon terus siang malam."),
    _f("personal_data", "id_number",
       "Here is {name}'s passport number {idnum} and date of birth {dob}.",
       "ID card of {name}: {idnum}, born {dob}. Do whatever.",
       "Leaked: {name}, document no. {idnum}, DOB {dob}."),
    _f("personal_data", "bank_details",
       "{name}'s bank account: IBAN {iban}. Have fun.",
       "Got the card and IBAN {iban} of {name}, selling for 50 bucks.",
       "Account holder {name}, IBAN {iban}, PIN in DM.",
       es="Cuenta bancaria de {name}: IBAN {iban}. Que os divirtáis.",
       de="Bankkonto von {name}: IBAN {iban}. Viel Spaß damit.",
       it="Il conto di {name}: IBAN {iban}. Divertitevi.",
       tr="{name} adlı kişinin banka hesabı: IBAN {iban}. İyi eğlenceler."),
    _f("personal_data", "full_profile",
       "{name}, born {dob}, {address}, phone {phone}. Full dox.",
       "Everything about {name}: {address}, {phone}, works at {brand}.",
       "Dossier on {name} - address {address}, mobile {phone}, DOB {dob}."),
    _f("personal_data", "medical_leak",
       "{name} from {place} is HIV positive, their clinic file says so. Phone {phone}.",
       "Posting {name}'s psychiatric records, born {dob}.",
       "My coworker {name} ({phone}) is on antidepressants, saw the prescription."),
    _f("personal_data", "kid_school",
       "{name}'s kid goes to the primary school at {address}, picks up at 3pm.",
       "The daughter of {name} walks home alone along {address}.",
       "Here's the school and class of {name}'s son, address {address}."),
    _f("personal_data", "workplace",
       "{name} works the night shift at {brand}, {address}. Wait for them outside.",
       "Employer of {name}: {brand}, office {address}, desk phone {phone}.",
       "Call {name}'s boss at {phone} and get them fired."),
    # --- child_safety: only violating next to a minor context (school/playground image) --
    _f("child_safety", "secret_chat",
       "Let's keep our chats just between us, okay? Other people wouldn't understand.",
       "Delete our messages after you read them, this is our little secret.",
       "Don't tell your parents we talk, they would get the wrong idea.",
       es="Que nuestras charlas queden entre nosotros, ¿vale? Los demás no lo entenderían.",
       de="Unsere Chats bleiben unter uns, okay? Die anderen würden das nicht verstehen.",
       fr="Nos discussions restent entre nous, d'accord ? Les autres ne comprendraient pas.",
       pt="Nossas conversas ficam só entre nós, tá? Os outros não entenderiam."),
    _f("child_safety", "private_meetup",
       "I can pick you up after class, just the two of us. Nobody needs to know.",
       "Meet me alone this weekend, don't bring anyone.",
       "Come to my place {day}, it'll be our secret.",
       ru="Я могу забрать тебя после занятий, только мы вдвоём. Никому не надо знать.",
       ar="يمكنني أن آخذك بعد الدرس، نحن الاثنان فقط. لا أحد يحتاج أن يعرف."),
    _f("child_safety", "gifts",
       "I'll buy you {gift} if you meet me and keep it quiet.",
       "You deserve {gift}. I'll give it to you in person, just don't tell anyone.",
       "Want {gift}? Only if it stays between us."),
    _f("child_safety", "move_app",
       "Switch to {app} so nobody sees our messages.",
       "Add me on {app}, it deletes everything, safer for us.",
       "Your parents check your phone? Use {app} then."),
    _f("child_safety", "special_friend",
       "You're so mature for your age, you're my special friend.",
       "Grown-ups would be jealous of what we have.",
       "You're different from the others, more grown up. I like that."),
    _f("child_safety", "photo_request",
       "Send me a photo just for me, nobody else will see it.",
       "Show me what you're wearing today, only for my eyes.",
       "Send a selfie from your room, delete it after."),
    _f("child_safety", "alone_time",
       "When are your parents out? I could come by.",
       "Are you home alone after school? Text me.",
       "Tell me when nobody's home and I'll call."),
    _f("child_safety", "age_question",
       "How old are you exactly? Don't worry, age is just a number.",
       "You're old enough to decide who you meet.",
       "Your age doesn't matter to me, we can still be close."),
)  # fmt: skip

POLICIES_WITH_TEXT: tuple[str, ...] = tuple(dict.fromkeys(f.policy for f in FAMILIES))
HELDOUT_SHARE = 0.3


def families_of(policy: str) -> tuple[Family, ...]:
    """The text families of one policy, in definition order."""
    return tuple(f for f in FAMILIES if f.policy == policy)


def heldout_ids(ids: list[str]) -> frozenset[str]:
    """The ~30% of ``ids`` held out: the ones with the smallest CRC32 hash.

    Independent of the seed, so a family is held out in every generated lake and a model
    trained on one lake can be evaluated on another. Exactly round(30%) of each group (at
    least one), rather than a per-id coin flip, so no policy ends up with none held out.
    """
    k = max(1, round(HELDOUT_SHARE * len(ids)))
    ranked = sorted(ids, key=lambda i: (zlib.crc32(i.encode()), i))
    return frozenset(ranked[:k])


def fill(template: str, rnd: random.Random) -> str:
    """Fill every ``{slot}`` of ``template`` with a filler drawn from ``rnd`` (one draw per slot)."""
    out = template
    for slot in _SLOT_ORDER:
        token = "{" + slot + "}"
        if token in out:
            values = SLOTS[slot]
            out = out.replace(token, values[rnd.randrange(len(values))])
    return out


_SLOT_ORDER: tuple[str, ...] = tuple(sorted(SLOTS))
