"""Benign text per language: everyday sentences, short replies and hard negatives.

Hard negatives talk *about* a policy's topic without violating it (news about a scam wave,
a history lesson on a war, a fact-check, a helpline notice, a business phone number). They
keep the task from being "does the text mention money / violence / a phone number".
"""

from __future__ import annotations

# ISO 639-1 code -> share of rows before labelling. English is the largest share, as in most
# EU backlogs; violating rows whose family has no translation become English posts, which
# lifts English from 36% here to about 40% of the rows written.
LANGUAGE_WEIGHTS: dict[str, float] = {
    "en": 0.36, "es": 0.08, "de": 0.07, "fr": 0.07, "pt": 0.05, "it": 0.04, "pl": 0.03, "ru": 0.04,
    "ar": 0.04, "hi": 0.04, "zh": 0.04, "ja": 0.03, "th": 0.02, "id": 0.03, "tr": 0.02,
}  # fmt: skip

# Scripts written without spaces between words: token counts come from characters there.
UNSPACED: frozenset[str] = frozenset({"zh", "ja", "th"})

SENTENCES: dict[str, tuple[str, ...]] = {
    "en": (
        "Had the best coffee this morning at the little place near the station.",
        "Does anyone know a good mechanic in {place}? My car makes a weird noise.",
        "The match last night was incredible, what a comeback in the second half.",
        "Finally finished the book everyone was talking about, the ending surprised me.",
        "Our garden is full of tomatoes this year, happy to share if anyone wants some.",
        "Traffic on the ring road was terrible again, left home an hour early.",
        "Trying a new recipe tonight: lentil soup with smoked paprika.",
        "Happy birthday to my little brother, can't believe you're twenty already!",
        "The museum has a new exhibition on modern architecture, worth a visit.",
        "Rain all week, but the weekend forecast looks sunny for once.",
        "Looking for recommendations for a quiet hotel in {place}.",
        "Our team shipped the new release today after months of work.",
        "Just adopted a cat from the shelter, she already owns the sofa.",
        "The train was delayed again, third time this week.",
        "Anyone watching the new series? No spoilers please.",
        "Selling my old bike, good condition, message me if interested.",
        "Great concert yesterday, the crowd sang every single song.",
        "Reminder that the library is closed on public holidays.",
        "I think I finally understand how compound interest works.",
        "The bakery on the corner makes the best cinnamon rolls in town.",
    ),
    "es": (
        "Hoy hace un día precioso para pasear por el parque.",
        "¿Alguien sabe dónde comprar pan recién hecho en {place}?",
        "El partido de anoche fue increíble, qué remontada.",
        "Por fin terminé el libro que todos recomendaban.",
        "Esta noche cocino paella para toda la familia.",
        "El tren volvió a llegar tarde, como siempre.",
        "Mi gato duerme todo el día en el sofá.",
        "Mañana empiezo un curso de fotografía.",
    ),
    "de": (
        "Heute war das Wetter perfekt für eine Radtour am Fluss.",
        "Kennt jemand eine gute Werkstatt in {place}?",
        "Das Spiel gestern Abend war der Wahnsinn.",
        "Endlich habe ich das Buch fertig gelesen, tolles Ende.",
        "Am Wochenende backen wir Apfelkuchen mit den Kindern.",
        "Die Bahn hatte mal wieder Verspätung.",
        "Unser neuer Hund hält uns ganz schön auf Trab.",
        "Morgen beginnt mein Sprachkurs an der Volkshochschule.",
    ),
    "fr": (
        "Il fait un temps magnifique pour une balade au bord du lac.",
        "Quelqu'un connaît un bon boulanger à {place} ?",
        "Le match d'hier soir était incroyable.",
        "J'ai enfin fini le roman dont tout le monde parle.",
        "Ce soir je prépare une ratatouille pour les amis.",
        "Le train a encore eu du retard ce matin.",
        "Mon chat a décidé que le canapé était à lui.",
        "Demain je commence un cours de guitare.",
    ),
    "pt": (
        "Hoje o dia está lindo para caminhar na praia.",
        "Alguém conhece um bom restaurante em {place}?",
        "O jogo de ontem foi emocionante até o fim.",
        "Terminei o livro que todo mundo recomendou.",
        "Vou fazer feijoada no domingo para a família.",
        "O ônibus atrasou de novo hoje.",
    ),
    "it": (
        "Oggi c'è un sole splendido, perfetto per una passeggiata.",
        "Qualcuno conosce una buona pizzeria a {place}?",
        "La partita di ieri sera è stata fantastica.",
        "Ho finalmente finito il libro che tutti consigliavano.",
        "Stasera preparo la lasagna per gli amici.",
        "Il treno era di nuovo in ritardo.",
    ),
    "pl": (
        "Dzisiaj piękna pogoda na spacer po parku.",
        "Czy ktoś zna dobrego mechanika w {place}?",
        "Wczorajszy mecz był niesamowity.",
        "Wreszcie skończyłem książkę, którą wszyscy polecali.",
        "W weekend pieczemy z dziećmi szarlotkę.",
        "Pociąg znowu się spóźnił.",
    ),
    "ru": (
        "Сегодня отличная погода для прогулки по набережной.",
        "Кто-нибудь знает хорошую пекарню в {place}?",
        "Вчерашний матч был просто невероятным.",
        "Наконец дочитал книгу, которую все советовали.",
        "На выходных будем печь пироги с бабушкой.",
        "Поезд опять опоздал на полчаса.",
        "Мой кот спит целый день на диване.",
    ),
    "ar": (
        "الطقس اليوم جميل جدًا للتنزه في الحديقة.",
        "هل يعرف أحد مطعمًا جيدًا في {place}؟",
        "كانت مباراة الأمس رائعة حتى النهاية.",
        "أنهيت أخيرًا الكتاب الذي نصحني به الجميع.",
        "سنطبخ الكبسة للعائلة يوم الجمعة.",
        "تأخر القطار مرة أخرى هذا الصباح.",
    ),
    "hi": (
        "आज मौसम बहुत सुहाना है, पार्क में घूमने चलते हैं।",
        "क्या कोई {place} में अच्छा रेस्टोरेंट जानता है?",
        "कल रात का मैच शानदार था।",
        "आखिरकार वह किताब पूरी कर ली जिसकी सब तारीफ करते हैं।",
        "रविवार को पूरे परिवार के लिए बिरयानी बनाऊँगी।",
        "आज फिर ट्रेन देर से आई।",
    ),
    "zh": (
        "今天天气很好，适合去公园散步。",
        "有人知道{place}哪里有好吃的饭馆吗？",
        "昨晚的比赛太精彩了。",
        "终于读完了大家都推荐的那本书。",
        "周末要给全家做饺子。",
        "今天的火车又晚点了。",
        "我家的猫整天在沙发上睡觉。",
    ),
    "ja": (
        "今日は散歩にぴったりの天気です。",
        "{place}でおすすめのラーメン屋はありますか？",
        "昨夜の試合は最高でした。",
        "みんながすすめていた本をやっと読み終えました。",
        "週末は家族でカレーを作ります。",
        "今朝も電車が遅れました。",
    ),
    "th": (
        "วันนี้อากาศดีมาก เหมาะกับการเดินเล่นในสวน",
        "มีใครรู้จักร้านอาหารอร่อยใน {place} บ้างไหม",
        "การแข่งขันเมื่อคืนสนุกมาก",
        "ในที่สุดก็อ่านหนังสือเล่มนั้นจบแล้ว",
        "สุดสัปดาห์นี้จะทำต้มยำให้ครอบครัว",
        "รถไฟมาสายอีกแล้ววันนี้",
    ),
    "id": (
        "Cuaca hari ini cerah, cocok untuk jalan-jalan di taman.",
        "Ada yang tahu warung makan enak di {place}?",
        "Pertandingan tadi malam seru sekali.",
        "Akhirnya selesai membaca buku yang direkomendasikan semua orang.",
        "Akhir pekan ini masak rendang untuk keluarga.",
        "Keretanya terlambat lagi hari ini.",
    ),
    "tr": (
        "Bugün hava parkta yürüyüş için harika.",
        "{place} şehrinde iyi bir lokanta bilen var mı?",
        "Dün akşamki maç inanılmazdı.",
        "Herkesin önerdiği kitabı sonunda bitirdim.",
        "Hafta sonu aileye mantı yapacağım.",
        "Tren yine gecikti.",
    ),
}

# Replies of one to five words: the short end of the length distribution.
SHORT: dict[str, tuple[str, ...]] = {
    "en": ("lol same", "nice pic!", "so true", "happy friday", "congrats!!", "where is this?", "love it"),
    "es": ("jaja verdad", "qué bonito", "felicidades!"),
    "de": ("haha genau", "schönes Foto", "Glückwunsch!"),
    "fr": ("trop vrai", "magnifique", "bravo !"),
    "pt": ("kkkk verdade", "que lindo", "parabéns!"),
    "it": ("verissimo", "che bello", "auguri!"),
    "pl": ("prawda", "super zdjęcie", "gratulacje!"),
    "ru": ("согласен", "красиво!", "поздравляю!"),
    "ar": ("صحيح", "جميل جدا", "مبروك!"),
    "hi": ("बिल्कुल सही", "बहुत सुंदर", "बधाई हो!"),
    "zh": ("哈哈对", "好漂亮", "恭喜！"),
    "ja": ("それな", "きれい！", "おめでとう！"),
    "th": ("จริง", "สวยมาก", "ยินดีด้วย"),
    "id": ("betul", "bagus banget", "selamat!"),
    "tr": ("aynen", "çok güzel", "tebrikler!"),
}

# Hard negatives: (family name, sentences by language). Mostly English, a few translated.
HARD_NEGATIVES: dict[str, dict[str, tuple[str, ...]]] = {
    "news_scam": {
        "en": (
            "Police in {place} warn of a new phone scam promising lottery winnings; never pay a fee to claim a prize.",
            "Consumer group: crypto 'doubling' offers are always fraud, report them to your bank.",
            "My grandmother almost fell for a fake parcel text, please talk to your parents about these scams.",
        ),
        "de": ("Die Polizei in {place} warnt vor falschen Gewinnversprechen am Telefon.",),
        "es": ("La policía de {place} alerta de una nueva estafa con falsos premios de lotería.",),
    },
    "history_violence": {
        "en": (
            "The documentary covers the violence of the Thirty Years' War and how it reshaped Europe.",
            "Our history class discussed the causes of the First World War and its terrible casualties.",
            "The novel depicts a fictional battle, but the real theme is grief and reconciliation.",
            "A knife-skills class at the cooking school: how to dice onions safely.",
        ),
        "fr": ("Le documentaire retrace les violences de la guerre de Cent Ans.",),
    },
    "factcheck": {
        "en": (
            "Fact check: no, vaccines do not contain microchips; the claim comes from a satire site.",
            "Election officials in {place} confirmed the count was audited twice and matched.",
            "Scientists explain why 5G signals cannot spread viruses.",
        ),
        "de": ("Faktencheck: Impfstoffe enthalten keine Mikrochips.",),
    },
    "counter_speech": {
        "en": (
            "Calling any group of people vermin is how persecution starts; we stand with our neighbours.",
            "Our town welcomed the Zorvians who arrived last year, and the market has never been livelier.",
        ),
    },
    "helpline": {
        "en": (
            "If you are struggling, you are not alone: talk to someone you trust or call a local helpline.",
            "Mental health week: our school counsellors are available every afternoon.",
            "Recovering from an eating disorder took years, and asking for help was the first step.",
        ),
        "es": ("Si estás pasando por un mal momento, habla con alguien de confianza o llama a una línea de ayuda.",),
    },
    "business_contact": {
        "en": (
            "Customer service: call {phone} Monday to Friday, 9am to 5pm.",
            "Our shop has moved! New address: {address}. Come and say hello.",
            "For bookings write to info@{brand}.example or call the front desk.",
        ),
        "de": ("Unser Laden ist umgezogen, neue Adresse: {address}.",),
    },
    "school_event": {
        "en": (
            "The school fair is this Saturday, with a bake sale and a book swap for the kids.",
            "Parents' evening next Tuesday, please sign up for a slot with the class teacher.",
            "The new playground opened today and the kids loved the slide.",
        ),
        "fr": ("La kermesse de l'école a lieu samedi, venez nombreux.",),
    },
}
